"""A connection deleted by a cascade — its user deleted (erasure), its integration deleted — revokes its
grant at the authorization server too, after the commit (services.connection_delete revokes itself
before deleting). Read before the delete: the same cascade may take the OAuth client's row."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from connections.models import Connection
from connections.services import revocation_for


@receiver(pre_delete, sender=Connection, dispatch_uid="connections.connection_deleted_revoke")
def _revoke_when_cascaded(sender, instance: Connection, **kwargs) -> None:
    if getattr(instance, "revoked_here", False):
        return
    revocation = revocation_for(instance)
    if revocation is not None:
        transaction.on_commit(revocation.run)

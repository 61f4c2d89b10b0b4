"""PromptTemplateVersion.shared: whether users other than the prompt's owner may read a version.

Backfill, conservatively: nobody knows which old versions were written while their prompt was shared,
so only the current version of each prompt shared today (an organization prompt, or one shared with
the organization) is marked; every other version is its owner's (and staff's, in the admin)."""

from django.db import migrations, models
from django.db.models import F, Q


def backfill_shared(apps, schema_editor):
    PromptTemplateVersion = apps.get_model("agents", "PromptTemplateVersion")
    shared_prompt = Q(template__owner__isnull=True) | Q(template__visibility="organization")
    current = PromptTemplateVersion.objects.filter(shared_prompt, version=F("template__version"))
    PromptTemplateVersion.objects.exclude(pk__in=current.values("pk")).update(shared=False)
    current.update(shared=True)


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0007_agent_versions_and_session_agent_version"),
    ]

    operations = [
        migrations.AddField(
            model_name="prompttemplateversion",
            name="shared",
            field=models.BooleanField(
                default=False,
                help_text="Users other than the owner see this version: it was the prompt's body while the prompt "
                "was shared (bodies written while it was private stay the owner's, even after it is shared).",
            ),
        ),
        # Reversed by nothing: removing the field (the AddField's reverse) is all there is to undo.
        migrations.RunPython(backfill_shared, migrations.RunPython.noop),
    ]

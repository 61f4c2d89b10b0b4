"""accounts.compiled: a lookup's SQL compiled once, its rows made into the instances the ORM would make
(values converted, deferred fields, select_related attached), and nothing of a row kept between calls."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services
from accounts.compiled import CompiledLookup
from accounts.models import ApiKey, User

pytestmark = pytest.mark.django_db


def test_a_row_with_its_related_one_is_what_the_orm_makes():
    user = User.objects.create_user(email="ada@example.com", password="a long passphrase", name="Ada")
    issued = services.api_key_create(user=user, name="laptop")
    lookup = CompiledLookup(lambda digest: ApiKey.objects.select_related("user").filter(key_hash=digest)[:1])

    with CaptureQueriesContext(connection) as queries:
        found = lookup.first(issued.api_key.key_hash)
        assert found.user.email == "ada@example.com"  # attached: no second query
    assert len(queries) == 1
    expected = ApiKey.objects.select_related("user").get(pk=issued.api_key.pk)
    for field in ApiKey._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    for field in User._meta.concrete_fields:
        assert getattr(found.user, field.attname) == getattr(expected.user, field.attname), field.name
    assert isinstance(found.created_at, datetime) and timezone.is_aware(found.created_at)
    assert found.user.is_active is True and found._state.adding is False and found._state.db == "default"
    assert lookup.first("no such hash") is None


def test_fields_left_out_load_when_read_and_rows_are_read_again_each_time():
    user = User.objects.create_user(email="grace@example.com", password="a long passphrase", name="Grace")
    lookup = CompiledLookup(lambda email: User.objects.only("id", "is_active").filter(email=email)[:1])

    found = lookup.first("grace@example.com")
    assert found.get_deferred_fields() >= {"name", "email"}
    assert found.name == "Grace"  # loaded when read
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert lookup.first("grace@example.com").is_active is False  # the SQL is kept, never the row


def test_a_lookup_whose_value_is_not_a_single_parameter_is_refused():
    lookup = CompiledLookup(lambda value: User.objects.filter(email=value, name=value)[:1])
    with pytest.raises(RuntimeError, match="exactly once"):
        lookup.first("x")

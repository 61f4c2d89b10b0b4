"""Lookups on every request's path, run as the ORM's own SQL compiled once per database vendor.

Compiling a query costs several times running it (an API key's lookup with its user: ~0.25 ms of CPU
to compile, ~0.01 ms to run on SQLite; a provider user's: ~0.36 against ~0.09, bench/RESULTS.md). The
rows are never cached — a revoked key or a deactivated user stops working at once — only the SQL is.
The instances are made as the ORM makes them: the database's values through the fields' converters,
`Model.from_db` (fields a queryset's `only()` left out load when read), `select_related` ones attached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.models import Model, QuerySet

_MARK = "\x00compiled-lookup-value"  # stands for the looked-up value while the query is compiled


def _converters(column) -> list:
    return connection.ops.get_db_converters(column) + column.get_db_converters(connection)


class _Compiled:
    def __init__(self, queryset: QuerySet) -> None:
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        if list(params).count(_MARK) != 1:
            raise RuntimeError(f"A compiled lookup needs its value exactly once: {params!r}")
        self.sql = sql
        self.params = tuple(params)
        self.columns = [column for column, _sql, _alias in compiler.select]
        self.converted = [index for index, column in enumerate(self.columns) if _converters(column)]
        self.klass_info = compiler.klass_info

    def first(self, value: Any) -> Model | None:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, [value if p == _MARK else p for p in self.params])
            row = cursor.fetchone()
        if row is None:
            return None
        values = list(row)
        for index in self.converted:  # as the ORM converts what the database returns (SQLite's booleans, dates)
            column = self.columns[index]
            for convert in _converters(column):
                values[index] = convert(values[index], column, connection)
        return self._instance(self.klass_info, values)

    def _instance(self, klass_info: dict, values: list) -> Model | None:
        indices = klass_info["select_fields"]
        names = [self.columns[index].target.attname for index in indices]
        model = klass_info["model"]
        if values[indices[names.index(model._meta.pk.attname)]] is None:  # an outer join found nothing
            return None
        instance = model.from_db(connection.alias, names, [values[index] for index in indices])
        for related in klass_info.get("related_klass_infos", ()):
            related_instance = self._instance(related, values)
            related["local_setter"](instance, related_instance)
            if related_instance is not None:
                related["remote_setter"](related_instance, instance)
        return instance


class CompiledLookup:
    """The first row of `queryset_for(value)` — a queryset filtered on one value, ordered and sliced
    as wanted — with its SQL compiled once per database vendor: `lookup.first(value)`."""

    def __init__(self, queryset_for: Callable[[Any], QuerySet]) -> None:
        self.queryset_for = queryset_for
        self._by_vendor: dict[str, _Compiled] = {}

    def first(self, value: Any) -> Model | None:
        compiled = self._by_vendor.get(connection.vendor)
        if compiled is None:
            compiled = self._by_vendor[connection.vendor] = _Compiled(self.queryset_for(_MARK))
        return compiled.first(value)

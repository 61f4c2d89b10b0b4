"""The one error shape, for every kind of failure a view can raise."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIRequestFactory

from config.errors import api_exception_handler


def handle(exc):
    request = APIRequestFactory().get("/")
    return api_exception_handler(exc, {"view": None, "request": request})


def test_a_django_validation_error_without_a_field_lands_under_non_field_errors():
    response = handle(ValidationError("Both given; choose one."))
    assert response.status_code == 400
    assert response.data["detail"]["fields"] == {"non_field_errors": ["Both given; choose one."]}


def test_a_django_validation_error_for_the_whole_object_lands_under_non_field_errors():
    response = handle(ValidationError({"__all__": ["Conflict."], "slug": ["Taken."]}))
    assert response.data["detail"]["fields"] == {"non_field_errors": ["Conflict."], "slug": ["Taken."]}


def test_an_unexpected_exception_is_a_500_without_details(caplog):
    response = handle(RuntimeError("secret internals"))
    assert response.status_code == 500
    assert response.data["detail"]["code"] == "server_error"
    assert "secret internals" not in str(response.data)
    assert "secret internals" in caplog.text  # logged for the operator, with its traceback


@pytest.mark.parametrize("exc_class", [PermissionError])
def test_it_does_not_swallow_what_it_does_not_know(exc_class):
    assert handle(exc_class("x")).status_code == 500

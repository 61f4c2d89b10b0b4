"""Browser login through the OpenID provider (mozilla-django-oidc, accounts/oidc.py)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from accounts.authentication import placeholder_email
from accounts.models import User
from accounts.oidc import ProviderBackend

pytestmark = pytest.mark.django_db

CLIENT_ID = "conduit-web"


@pytest.fixture
def browser_login(settings, oidc_provider):
    """Browser login switched on against the fake provider."""
    settings.OIDC_ENABLED = True
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = "client-secret"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{oidc_provider.base_url}/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{oidc_provider.base_url}/oauth/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{oidc_provider.base_url}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = oidc_provider.jwks_url
    settings.OIDC_AUTH_REQUEST_EXTRA_PARAMS = {"audience": oidc_provider.audience}
    settings.AUTHENTICATION_BACKENDS = ["accounts.oidc.ProviderBackend", "django.contrib.auth.backends.ModelBackend"]
    return oidc_provider


def claims(**overrides):
    return {"sub": "auth0|dana", "email": "dana@example.com", "email_verified": True, "name": "Dana", **overrides}


# --- the backend's rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [{"email_verified": False}, {"email_verified": "true"}, {"email_verified": ...}, {"email": ...},
     {"sub": ...}, {"sub": ""}, {"sub": "conduit|3"}],
    ids=["unverified", "verified-as-string", "no-verified-claim", "no-email", "no-sub", "empty-sub", "local-namespace"],
)
def test_it_refuses_claims_without_a_subject_and_a_verified_email(bad):
    given = {name: value for name, value in claims(**bad).items() if value is not ...}

    assert ProviderBackend().verify_claims(given) is False


def test_it_accepts_a_subject_with_a_verified_email():
    assert ProviderBackend().verify_claims(claims()) is True


def test_it_creates_an_email_only_provider_user():
    user = ProviderBackend().create_user(claims(email="Dana@Example.com"))

    assert (user.email, user.name, user.provider, user.external_id) == (
        "dana@example.com", "Dana", User.Provider.OIDC, "auth0|dana")
    assert not user.has_usable_password()


def test_it_matches_the_subject_before_the_email(make_user):
    by_subject = make_user(email="old@example.com", provider=User.Provider.OIDC, external_id="auth0|dana")
    make_user(email="dana@example.com")

    assert ProviderBackend().filter_users_by_claims(claims()) == [by_subject]


def test_it_matches_a_verified_email_when_the_subject_is_new(make_user):
    by_email = make_user(email="dana@example.com")

    assert ProviderBackend().filter_users_by_claims(claims(email="DANA@example.com")) == [by_email]


def test_it_links_a_provider_user_found_by_email_to_the_subject(make_user):
    unlinked = make_user(email="dana@example.com", provider=User.Provider.OIDC)

    ProviderBackend().update_user(unlinked, claims())

    assert User.objects.get(pk=unlinked.pk).external_id == "auth0|dana"


def test_it_replaces_a_placeholder_email_by_the_verified_one(make_user):
    from_token = make_user(email=placeholder_email("auth0|dana"), provider=User.Provider.OIDC, external_id="auth0|dana")

    ProviderBackend().update_user(from_token, claims())

    assert User.objects.get(pk=from_token.pk).email == "dana@example.com"


# --- the views -------------------------------------------------------------------------------


def test_login_urls_answer_404_when_not_configured(client, settings):
    settings.OIDC_ENABLED = False

    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404


def test_it_redirects_to_the_provider_with_pkce_and_the_audience(client, browser_login):
    response = client.get("/oidc/authenticate/?next=/chat")

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{browser_login.base_url}/authorize"
    query = {name: values[0] for name, values in parse_qs(location.query).items()}
    assert query["client_id"] == CLIENT_ID
    assert query["response_type"] == "code"
    assert query["audience"] == browser_login.audience
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) >= 43
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    assert query["state"] and query["nonce"]
    assert query["redirect_uri"].endswith("/oidc/callback/")


def test_a_full_browser_login_creates_and_signs_in_the_user(client, browser_login):
    redirect = client.get("/oidc/authenticate/")
    query = {name: values[0] for name, values in parse_qs(urlsplit(redirect["Location"]).query).items()}
    browser_login.token_response = {
        "access_token": "provider-access-token",
        "token_type": "Bearer",
        "id_token": browser_login.mint(sub="auth0|dana", aud=CLIENT_ID, nonce=query["nonce"]),
    }
    browser_login.userinfo["provider-access-token"] = claims()

    response = client.get(f"/oidc/callback/?code=the-code&state={query['state']}")

    assert response.status_code == 302 and response["Location"] == "/chat/"
    user = User.objects.get(provider=User.Provider.OIDC, external_id="auth0|dana")
    assert user.email == "dana@example.com"
    assert client.session["_auth_user_id"] == str(user.pk)
    [token_request] = browser_login.token_requests
    assert "code_verifier=" in token_request and "code=the-code" in token_request


def test_a_browser_login_with_an_unverified_email_is_refused(client, browser_login):
    redirect = client.get("/oidc/authenticate/")
    query = {name: values[0] for name, values in parse_qs(urlsplit(redirect["Location"]).query).items()}
    browser_login.token_response = {
        "access_token": "at-2",
        "token_type": "Bearer",
        "id_token": browser_login.mint(sub="auth0|eve", aud=CLIENT_ID, nonce=query["nonce"]),
    }
    browser_login.userinfo["at-2"] = claims(sub="auth0|eve", email="victim@example.com", email_verified=False)

    response = client.get(f"/oidc/callback/?code=c&state={query['state']}")

    assert response.status_code == 302  # to the failure URL
    assert "_auth_user_id" not in client.session
    assert not User.objects.filter(external_id="auth0|eve").exists()


@pytest.mark.parametrize("id_token_claims", [{"aud": "another-client"}, {"iss": "https://evil.example.com/"}])
def test_an_id_token_for_another_client_or_from_another_issuer_is_refused(client, browser_login, id_token_claims):
    redirect = client.get("/oidc/authenticate/")
    query = {name: values[0] for name, values in parse_qs(urlsplit(redirect["Location"]).query).items()}
    browser_login.token_response = {
        "access_token": "at-3",
        "token_type": "Bearer",
        "id_token": browser_login.mint(**{"sub": "auth0|dana", "aud": CLIENT_ID, "nonce": query["nonce"],
                                          **id_token_claims}),
    }
    browser_login.userinfo["at-3"] = claims()

    response = client.get(f"/oidc/callback/?code=c&state={query['state']}")

    assert response.status_code == 302  # to the failure URL
    assert "_auth_user_id" not in client.session
    assert not User.objects.filter(external_id="auth0|dana").exists()

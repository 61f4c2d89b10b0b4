from django.urls import path

from accounts import api

urlpatterns = [
    path("register", api.RegisterApi.as_view(), name="auth-register"),
    path("login", api.LoginApi.as_view(), name="auth-login"),
    path("refresh", api.RefreshApi.as_view(), name="auth-refresh"),
    path("logout", api.LogoutApi.as_view(), name="auth-logout"),
    path("me", api.MeApi.as_view(), name="auth-me"),
    path("password", api.PasswordChangeApi.as_view(), name="auth-password"),
    path("api-keys", api.ApiKeysApi.as_view(), name="auth-api-keys"),
    path("api-keys/<str:key_id>", api.ApiKeyApi.as_view(), name="auth-api-key"),
]

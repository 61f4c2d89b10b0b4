from django.apps import AppConfig


class OrgproxyConfig(AppConfig):
    name = "orgproxy"
    verbose_name = "Organization server"

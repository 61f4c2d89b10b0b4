"""WSGI entry point. Plain HTTP reaches Django through here, also inside `config.asgi`
(see its docstring): Django's WSGI path is several times cheaper than its ASGI path. The plain case
of the organization server's two busiest requests is answered before Django (orgproxy.fastpath)."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from whitenoise import WhiteNoise

from config.startup import freeze_startup_heap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()
# Static files are answered before Django is entered at all (run `manage.py collectstatic`).
static_files = WhiteNoise(django_application)
if settings.STATIC_ROOT.is_dir():
    static_files.add_files(settings.STATIC_ROOT, prefix=settings.STATIC_URL)

from orgproxy.fastpath import OrgProxyFastPath  # noqa: E402 (needs Django set up)

application = OrgProxyFastPath(static_files)

freeze_startup_heap()

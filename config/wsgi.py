"""WSGI entry point. Plain HTTP reaches Django through here, also inside `config.asgi`
(see its docstring): Django's WSGI path is several times cheaper than its ASGI path."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from whitenoise import WhiteNoise

from config.startup import freeze_startup_heap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()
# Static files are answered before Django is entered at all (run `manage.py collectstatic`).
application = WhiteNoise(django_application)
if settings.STATIC_ROOT.is_dir():
    application.add_files(settings.STATIC_ROOT, prefix=settings.STATIC_URL)

freeze_startup_heap()

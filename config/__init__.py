"""The project's ground floor and its entry points.

Entry points assemble the apps and may import them: `settings`, `urls`, `asgi`, `wsgi`, `admin_site`.
Every other module here (errors, middleware, egress, cache, database backends, serving, startup, testing
helpers) is the ground floor: it imports no app. Apps reach upwards through hooks, not imports:
`config.startup.serving_duty` for a serving process's periodic duties.
"""

__version__ = "0.1.0"

"""The database engine of settings.DATABASES: django-prometheus's PostgreSQL wrapper with a
health check that needs no round trip when the connection's socket is quiet (see `base`)."""

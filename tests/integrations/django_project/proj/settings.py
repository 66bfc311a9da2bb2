"""A small Django project using omniq.contrib.django. The database and the task store
come from the environment: ``TEST_DB=sqlite`` (``TEST_SQLITE`` is the file, shared by
Django and OmniQ) or ``TEST_DB=postgres`` (Django on ``TEST_PG_*``, OmniQ in the schema
of ``TEST_OMNIQ_URL`` in the same database)."""

import os

SECRET_KEY = "test-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "omniq.contrib.django"]

if os.environ["TEST_DB"] == "sqlite":
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["TEST_SQLITE"]}
    }
    OMNIQ = {"TASK_QUEUE": f"sqlite:///{os.environ['TEST_SQLITE']}"}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["TEST_PG_NAME"],
            "USER": os.environ["TEST_PG_USER"],
            "HOST": "127.0.0.1",
            "PORT": "5432",
        }
    }
    OMNIQ = {"TASK_QUEUE": os.environ["TEST_OMNIQ_URL"]}
OMNIQ["RESULT_TTL"] = 3600

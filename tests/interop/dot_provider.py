"""A second real OAuth2 provider for the interop tests (tests/interop_dot.rs):
django-oauth-toolkit, in a one-file Django project configured here, on 127.0.0.1 only,
on a port the system picks. It prints one line, `listening http://127.0.0.1:PORT/`, once
it accepts connections, and runs until its standard input closes or it is killed.

The database (SQLite) lives in the directory named by DOT_DB_DIR. One user, `me` with
password `me-password`, and one confidential client, `pizauth` (secret below, a test
value), registered with the redirect URIs http://127.0.0.1/ and http://localhost/.
django-oauth-toolkit lets the port vary for the loopback IP literals only (RFC 8252
section 7.3), so a `localhost` redirect on another port is refused.
"""

import os
import sys
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import django
from django.conf import settings

CLIENT_SECRET = "dot-secret-0123456789"

settings.configure(
    DEBUG=False,
    SECRET_KEY="interop-test-key-not-a-secret-0123456789",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "oauth2_provider",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(os.environ["DOT_DB_DIR"], "db.sqlite3"),
        }
    },
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
        }
    ],
    LOGIN_URL="/accounts/login/",
    USE_TZ=True,
    OAUTH2_PROVIDER={
        "SCOPES": {"mail": "Read and send mail"},
        "ACCESS_TOKEN_EXPIRE_SECONDS": 60,
        "PKCE_REQUIRED": True,
        "ROTATE_REFRESH_TOKEN": True,
    },
)
django.setup()

from django.contrib.auth import login  # noqa: E402
from django.contrib.auth.forms import AuthenticationForm  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, HttpResponseRedirect  # noqa: E402
from django.middleware.csrf import get_token  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.utils.html import escape  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402


def login_view(request):
    """The login page: Django's own authentication form, in a page of ours."""
    form = AuthenticationForm(request, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.get_user())
        return HttpResponseRedirect(request.GET.get("next", "/"))
    page = (
        '<form method="post" action="">'
        f'<input type="hidden" name="csrfmiddlewaretoken" value="{escape(get_token(request))}">'
        '<input type="text" name="username"><input type="password" name="password">'
        '<input type="submit" value="Log in"></form>'
    )
    return HttpResponse(page)


urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", login_view),
]


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        sys.stderr.write("%s\n" % (args[0] % args[1:]))


def main():
    call_command("migrate", verbosity=0, interactive=False)
    User.objects.create_user("me", password="me-password")
    Application.objects.create(
        name="pizauth",
        client_id="pizauth",
        client_secret=CLIENT_SECRET,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="http://127.0.0.1/ http://localhost/",
        skip_authorization=False,
    )
    server = make_server("127.0.0.1", 0, get_wsgi_application(), Server, Quiet)
    print(f"listening http://127.0.0.1:{server.server_port}/", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()


if __name__ == "__main__":
    main()

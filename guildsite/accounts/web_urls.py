"""The sign-in and sign-out pages (Django's own views; sign-in attempts are throttled like the token endpoint)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.urls import path

from guildsite.page_policy import strict_page
from guildsite.throttle import sign_in_attempt


class SignInView(auth_views.LoginView):
    template_name = "login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        wait = sign_in_attempt(request.POST.get("username", ""), request.META.get("REMOTE_ADDR", ""))
        if wait is not None:
            response = self.render_to_response(self.get_context_data(
                form=self.get_form(), throttled=f"Too many sign-in attempts: try again in {wait} s."))
            response.status_code = 429
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)


urlpatterns = [
    path("login/", strict_page(SignInView.as_view()), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Fleet control plane"
admin.site.site_title = "Fleet"

urlpatterns = [
    path("api/v1/", include("fleet.api.urls")),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]

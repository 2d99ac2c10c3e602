from __future__ import annotations

from django.urls import path

from generation import gallery_views, views

app_name = "generation"
urlpatterns = [
    path("create/", views.create, name="create"),
    path("create/fields/", views.model_fields, name="model_fields"),
    path("g/<uuid:uuid>/", views.detail, name="detail"),
    path("g/<uuid:uuid>/status/", views.status_fragment, name="status"),
    path("g/<uuid:uuid>/cancel/", views.cancel, name="cancel"),
    path("g/<uuid:uuid>/retry/", views.retry, name="retry"),
    path("g/<uuid:uuid>/again/", views.run_again, name="run_again"),
    path("a/<uuid:uuid>/download/", views.download, name="download"),
    path("files/<str:token>/", views.signed_file, name="file"),
    path("gallery/", gallery_views.gallery, name="gallery"),
    path("gallery/delete/", gallery_views.delete_selected, name="gallery_delete"),
    path("gallery/delete-history/", gallery_views.delete_history, name="gallery_delete_history"),
    path("g/<uuid:uuid>/card/", gallery_views.card, name="gallery_card"),
    path("g/<uuid:uuid>/favorite/", gallery_views.favorite, name="favorite"),
    path("webhooks/replicate/", views.replicate_webhook, name="replicate_webhook"),
]

from __future__ import annotations

from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("status/", views.checkout_status, name="checkout_status"),
    path("checkout/pack/<slug:slug>/", views.checkout_pack, name="checkout_pack"),
    path("checkout/plan/<slug:slug>/", views.checkout_plan, name="checkout_plan"),
    path("portal/", views.portal, name="portal"),
]

"""Account pages, error pages and the phone menu in Chromium, at desktop and phone widths
(issue 10, "Account pages polish"). Screenshots land in test-artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from tests.browser import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def fits_the_screen(page) -> bool:
    """No sideways scrolling: nothing is wider than the window."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def shoot_both(page, url: str, name: str) -> None:
    for size, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
        page.set_viewport_size(size)
        page.goto(url)
        assert fits_the_screen(page), f"{name}{suffix} scrolls sideways"
        screenshot(page, f"{name}{suffix}")


def test_phone_header_collapses_into_a_menu_and_keeps_the_balance(page, alice):
    sign_in(page, alice)
    page.set_viewport_size(PHONE)
    page.goto("/account/profile/")
    balance = page.locator(".nav-credits")
    assert balance.is_visible() and balance.inner_text() == "0 credits"
    assert not page.get_by_role("link", name="Pricing").is_visible()  # folded away

    page.get_by_text("Menu", exact=True).click()
    assert page.get_by_role("link", name="Pricing").is_visible()
    assert page.get_by_role("button", name="Sign out").is_visible()
    assert fits_the_screen(page)
    screenshot(page, "phone-menu-open")
    page.get_by_role("link", name="Pricing").click()
    page.wait_for_url("**/pricing/")
    assert page.locator(".nav-credits").is_visible()

    page.set_viewport_size(DESKTOP)
    assert not page.get_by_text("Menu", exact=True).is_visible()
    assert page.get_by_role("link", name="Create", exact=True).is_visible()
    assert page.locator(".nav-credits").is_visible()


def test_signed_out_pages_look_right_on_desktop_and_phone(page):
    shoot_both(page, "/accounts/login/", "signin")
    shoot_both(page, "/accounts/signup/", "signup")
    shoot_both(page, "/accounts/password/reset/", "password-reset")
    page.get_by_label("Email").fill("nobody@example.com")
    page.get_by_role("button", name="Send me a reset link").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    screenshot(page, "password-reset-sent-phone")
    page.set_viewport_size(PHONE)
    page.goto("/")
    page.get_by_text("Menu", exact=True).click()
    assert page.get_by_role("link", name="Sign in").first.is_visible()
    screenshot(page, "phone-menu-open-signed-out")


def test_account_pages_look_right_on_desktop_and_phone(page, alice):
    sign_in(page, alice)
    page.get_by_text("Welcome to Atelier").wait_for()
    screenshot(page, "welcome-on-create")
    shoot_both(page, "/account/profile/", "account-profile")
    shoot_both(page, "/accounts/email/", "account-email")
    assert page.get_by_role("button", name="Remove").count() == 0
    shoot_both(page, "/accounts/password/change/", "account-password")
    shoot_both(page, "/accounts/3rdparty/", "account-connections")


def test_error_pages_are_branded(page, alice):
    page.goto("/no-such-page/")
    page.get_by_role("heading", name="We couldn't find that page").wait_for()
    shoot_both(page, "/no-such-page/", "error-404")
    sign_in(page, alice)
    shoot_both(page, "/admin/login/", "error-403")
    assert page.get_by_role("heading", name="You don't have access to this page").is_visible()


def test_static_500_page_is_styled_from_the_static_css(page):
    page.goto("/")  # same origin, so the page's /static/ links load as they would in production
    for size, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
        page.set_viewport_size(size)
        page.set_content((Path(settings.BASE_DIR) / "templates" / "500.html").read_text(), wait_until="load")
        assert page.get_by_role("heading", name="Something went wrong on our side").is_visible()
        assert page.evaluate("getComputedStyle(document.querySelector('.btn-primary')).backgroundColor") != (
            "rgba(0, 0, 0, 0)"
        )
        assert fits_the_screen(page)
        screenshot(page, f"error-500{suffix}")

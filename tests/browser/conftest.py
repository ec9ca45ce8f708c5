"""The browser layer's fixtures: headless Chromium and the CDN stand-in (tests/support/browser.py).

Here rather than in tests/conftest.py: that file is imported by every test process, xdist's
controller included, and these import the app's auth."""

from tests.support.browser import browser, browser_pool, fake_cdn  # noqa: F401  (fixtures)

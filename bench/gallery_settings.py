"""Settings for bench/gallery.py's server: the site's own, plus one bare page to compare against."""

from config.settings import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "bench.gallery_urls"

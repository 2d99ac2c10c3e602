"""Settings for bench/api.py's server: the site's own, plus the bare views; limits out of the way
(the bench measures throughput, not the rate limits)."""

from config.settings import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "bench.api_urls"
GENERATION_SUBMIT_RATE_PER_USER = "1000000/m"
GENERATION_SUBMIT_RATE_PER_IP = "1000000/m"
API_RATE_PER_KEY = "1000000/m"
API_RATE_PER_USER = "1000000/m"

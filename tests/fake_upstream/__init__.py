"""The test suite's fake Gemini upstream.

It is the product's stand-in for Google (``executors/standin``), which the demo
starts too, so that what newcomers try and what the tests hold to Google's
formats are one program. Tests take it from here.
"""

from executors.standin import GeminiStandIn as FakeUpstream

__all__ = ["FakeUpstream"]

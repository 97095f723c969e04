"""Container healthcheck: exit 0 when every URL given answers HTTP 2xx within 5 seconds.

    python /opt/lakescore/docker/healthcheck.py http://localhost:5000/health

The slim image has no curl; this needs only the standard library (and starts in ~50 ms).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def main(urls: list[str]) -> int:
    if not urls:
        print("usage: healthcheck.py URL [URL...]", file=sys.stderr)
        return 2
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if not 200 <= response.status < 300:
                    print(f"{url}: HTTP {response.status}", file=sys.stderr)
                    return 1
        except (urllib.error.URLError, OSError) as exc:
            print(f"{url}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

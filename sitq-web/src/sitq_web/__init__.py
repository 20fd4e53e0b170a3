"""sitq-web: a dashboard for sitq, as an ASGI app to mount or to run with ``sitq web``.

```python
from sitq_web import create_app

dashboard = create_app("sqlite:///tasks.db", auth="a-long-secret-token")
```
"""

from ._version import __version__
from .app import create_app

__all__ = ["__version__", "create_app"]

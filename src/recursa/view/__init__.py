"""`recursa view`: how a population evolves, as one self-contained HTML page.

`write_view(run_dirs, out)` writes the page of evaluation runs (finished or running),
`build_view` returns it as text, `serve` serves it live on 127.0.0.1, and
`write_solve_view` writes the page of one `recursa solve` result. See docs/VIEW.md.
"""

from recursa.view.page import build_view, write_view
from recursa.view.serve import serve
from recursa.view.solve import write_solve_view

__all__ = ["build_view", "serve", "write_solve_view", "write_view"]

"""`python -m bench.endpoint PORT`: a stand-in model endpoint for the inference benchmark (its own process).

Answers every POST with a small fixed JSON prediction, as fast as aiohttp can: what is measured beside it is
the registry's route, not the model.
"""

from __future__ import annotations

import sys

from aiohttp import web

ANSWER = b'{"outputs": {"y": [[2.25, 5.5]]}}'


async def predict(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=ANSWER, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", predict)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()

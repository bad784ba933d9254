"""The gateway with its store silent (issue 14, B and item 4).

The gateway reaches FerretDB through tests/netproxy.py's blackhole, which takes
connections and bytes and answers nothing, the way a partition or a hung process does;
without bounded driver timeouts this hangs. Every authenticated route, the SSE stream
and the WebSocket answer 503 with the French message within a bound, and everything
answers again once the network heals (tests/store_fault_support.py). The store killed
under load is tests/test_faults_store.py's, with the same checks.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from netproxy import FaultyProxy
from stack import Stack, add_user
from store_fault_support import (
    SILENT_BOUND_S,
    check,
    during_the_fault,
    prepare,
    until_everything_answers,
)
from system_client import Socket
from system_colis_support import FAST

pytestmark = pytest.mark.system


@pytest.mark.timeout(420)
@pytest.mark.parametrize(
    "outage_s",
    [pytest.param(15.0, id="15s"), pytest.param(60.0, marks=pytest.mark.slow, id="60s")],
)
async def test_store_silent_every_route_answers_503_within_a_bound_then_200_again(
    make_stack, test_env, outage_s: float
) -> None:
    store = urlsplit(test_env.mongo_url)
    with FaultyProxy(store.hostname or "127.0.0.1", store.port or 27017) as proxy:
        through_proxy = f"mongodb://127.0.0.1:{proxy.port}/"
        stack: Stack = make_stack(**FAST)
        stack.start("progress-svc")
        stack.start("import-svc")
        stack.start("colis-svc")
        # only the gateway's store traffic crosses the proxy
        stack.start("gateway", extra_env={"JAUGE_MONGO_URL": through_proxy})
        add_user(test_env.env(), "alice", "agent", "alice-password")
        stack.wait_ready(timeout_s=180)
        gateway = stack.service("gateway").url
        token, task_id = await prepare(gateway)

        socket = await Socket.open(gateway, token)
        proxy.blackhole()  # connections and bytes taken, nothing answered, nothing closed
        answers, refusals, closed = await during_the_fault(
            gateway, token, task_id, outage_s, socket
        )
        proxy.restore()
        back_s = await until_everything_answers(gateway, token, task_id)

    check(answers, refusals, closed, SILENT_BOUND_S)
    print(
        f"\nstore silent {outage_s:.0f}s: {dict(answers.by_route)}; slowest"
        f" {answers.slowest_s:.1f}s; {len(refusals)} sockets closed {refusals[0]};"
        f" all answering {back_s:.1f}s after the network healed"
    )

from __future__ import annotations

from conftest import Aws, Env, Sandbox, enqueue, make_settings, request, running_worker, table_items, wait_for


async def test_one_request_is_sent_recorded_and_deleted(aws: Aws, env: Env, sandbox: Sandbox) -> None:
    await enqueue(aws.sqs, env.queue_url, [request(1)])
    async with running_worker(make_settings(env)):
        items = await wait_for(lambda: _final(aws, env), timeout_s=20)
    assert items["req-1"]["Status"] == "SENT"
    print(items)


async def _final(aws: Aws, env: Env):
    items = await table_items(aws.ddb, env.table)
    if items and all(i["Status"] == "SENT" for i in items.values()):
        return items
    return None

"""Drive Roster's Groups API through Sinch's own Python SDK (PyPI `sinch`).

usage: python3 sinch_groups.py BASE_URL PLAN_ID TOKEN

Exits 0 when every check passes; on the first failed check it prints
"FAIL [python] ..." to stderr and exits 1.

SDK notes (sinch 2.3.0):
- service_plan_id + sms_api_token selects "sms_auth": requests go to
  {origin}/xms/v1/{service_plan_id}/... with "Authorization: Bearer {token}".
- The origin for that mode is configuration.sms_origin_with_service_plan_id
  (Sinch's own e2e tests set it the same way); any scheme/host/port works.
- groups.update() serialises EVERY unset field as JSON null, including
  "name": null. So an update that omits name= clears the group's name, and
  the server must accept "add": null, "add_from_group": null,
  "auto_update": null, ... as "not given". This script therefore passes
  name= explicitly whenever the name must survive an update.
"""
import sys
import traceback
import uuid
from datetime import datetime, timedelta, timezone

from sinch import SinchClient
from sinch.core.exceptions import SinchException
from sinch.domains.sms.api.v1.exceptions import SmsException


def say(msg):
    print(f"[python] {msg}", flush=True)


def fail(msg):
    print(f"FAIL [python] {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def digits(numbers):
    """Members compared without a leading '+': Sinch itself returns MSISDNs
    without it, Roster returns E.164 with it; the SDKs pass either through."""
    return sorted(n.lstrip("+") for n in numbers)


def client_for(base_url, plan_id, token):
    client = SinchClient(service_plan_id=plan_id, sms_api_token=token)
    client.configuration.sms_origin_with_service_plan_id = base_url.rstrip("/")
    return client


def expect_error(what, call, status, code=None):
    """Run call(), which must fail with HTTP `status` (and error `code` if given)."""
    try:
        call()
    except SmsException as e:
        body = e.http_response.body if e.http_response is not None else None
        check(e.response_status_code == status,
              f"{what}: expected HTTP {status}, got {e.response_status_code} body={body!r}")
        if code is not None:
            check(isinstance(body, dict) and body.get("code") == code,
                  f"{what}: expected error code {code!r}, got body={body!r}")
            check(isinstance(body.get("text"), str) and body["text"] != "",
                  f"{what}: error body needs a non-empty 'text', got {body!r}")
        say(f"ok: {what} -> {status} {body.get('code') if isinstance(body, dict) else ''}")
        return
    except SinchException as e:
        fail(f"{what}: expected HTTP {status}, but the SDK could not read the response "
             f"(error bodies must be JSON or empty): {e}")
    fail(f"{what}: expected HTTP {status}, but the call succeeded")


def check_group(g, what, gid=None, name=None, size=None, child_groups=None):
    check(isinstance(g.id, str) and g.id, f"{what}: missing id in {g!r}")
    if gid is not None:
        check(g.id == gid, f"{what}: id {g.id!r} != {gid!r}")
    check(g.name == name, f"{what}: name {g.name!r} != {name!r}")
    if size is not None:
        check(g.size == size, f"{what}: size {g.size!r} != {size!r}")
    if child_groups is not None:
        check(g.child_groups == child_groups,
              f"{what}: child_groups {g.child_groups!r} != {child_groups!r}")
    for field in ("created_at", "modified_at"):
        value = getattr(g, field)
        check(isinstance(value, datetime) and value.tzinfo is not None,
              f"{what}: {field} should be a timezone-aware timestamp, got {value!r}")


def reports(client, batch_id, delivered, failed):
    """Reads a sent batch's delivery reports through the SDK: one recipient reported
    Delivered (code 0), the other Failed (code 402)."""
    reports = client.sms.delivery_reports
    summary = reports.get(batch_id=batch_id)
    check(summary.batch_id == batch_id and summary.total_message_count == 2,
          f"delivery report summary: {summary!r}")
    counts = sorted((s.status, s.code, s.count) for s in summary.statuses)
    check(counts == [("Delivered", 0, 1), ("Failed", 402, 1)], f"summary statuses: {counts!r}")
    full = reports.get(batch_id=batch_id, report_type="full", status=["Failed"])
    check([(s.status, list(s.recipients)) for s in full.statuses] == [("Failed", [failed])],
          f"full report of the failed: {full!r}")
    one = reports.get_for_number(batch_id=batch_id, recipient=delivered.lstrip("+"))
    check(one.status == "Delivered" and one.code == 0 and one.recipient == delivered,
          f"recipient report: {one!r}")
    expect_error("report of a number the batch did not reach",
                 lambda: reports.get_for_number(batch_id=batch_id, recipient="46700000000"), 404)
    say("ok: delivery reports of a batch, summary, full and per recipient")


def main():
    if len(sys.argv) == 8 and sys.argv[4] == "reports":
        base_url, plan_id, token = sys.argv[1:4]
        reports(client_for(base_url, plan_id, token), *sys.argv[5:8])
        return
    if len(sys.argv) != 4:
        print("usage: sinch_groups.py BASE_URL PLAN_ID TOKEN [reports BATCH DELIVERED FAILED]",
              file=sys.stderr)
        sys.exit(2)
    base_url, plan_id, token = sys.argv[1:4]
    client = client_for(base_url, plan_id, token)
    groups = client.sms.groups

    tag = uuid.uuid4().hex[:6]
    name_a, name_b, name_c = f"py-{tag}-A", f"py-{tag}-B", f"py-{tag}-C"
    n1, n2, n3, n4, n5, n6, n7 = (f"+4670123450{i}" for i in range(1, 8))

    def members(gid):
        page = groups.list_members(group_id=gid)
        content = page.content()
        check(isinstance(content, list), f"members of {gid}: expected a list, got {content!r}")
        return digits(content)

    def check_members(gid, expected, what):
        got = members(gid)
        check(got == digits(expected), f"{what}: members {got} != {digits(expected)}")

    def total():
        return groups.list(page=0, page_size=1).result.count

    def check_total(expected, what):
        got = total()
        check(got == expected, f"{what}: count {got} != {expected}")

    # --- auth -------------------------------------------------------------
    before = total()
    check(isinstance(before, int), f"list: count should be an int, got {before!r}")
    say(f"ok: list works, {before} existing group(s)")
    expect_error("wrong token", lambda: client_for(base_url, plan_id, token + "x")
                 .sms.groups.list(page=0, page_size=1), 401)
    # Roster answers a path whose plan is not the token's with 403 (SPEC §1), where Sinch says 401.
    expect_error("token used with another service plan", lambda: client_for(base_url, plan_id + "x", token)
                 .sms.groups.list(page=0, page_size=1), 403)

    # --- create / retrieve ------------------------------------------------
    a = groups.create(name=name_a, members=[n1, n2, n1])
    check_group(a, "create A", name=name_a, size=2, child_groups=[])
    say(f"ok: create with a duplicate member -> size 2, child_groups [] ({a.id})")
    got = groups.get(group_id=a.id)
    check_group(got, "retrieve A", gid=a.id, name=name_a, size=2, child_groups=[])
    check(got.created_at == a.created_at, "retrieve A: created_at changed")
    check_members(a.id, [n1, n2], "members of A")
    say("ok: retrieve and members")

    # --- update: add + remove of the same number ----------------------------
    u = groups.update(group_id=a.id, name=name_a, add=[n3], remove=[n3])
    check_group(u, "update add+remove", gid=a.id, name=name_a, size=2)
    check_members(a.id, [n1, n2], f"after add+remove of {n3}")
    u = groups.update(group_id=a.id, name=name_a, add=[n1], remove=["+46709999999"])
    check_group(u, "update duplicate add / unknown remove", gid=a.id, name=name_a, size=2)
    say("ok: add+remove of the same number leaves it absent; duplicate add and unknown remove ignored")

    # --- add_from_group / remove_from_group ---------------------------------
    b = groups.create(name=name_b, members=[n4, n5])
    check_group(b, "create B", name=name_b, size=2, child_groups=[])
    u = groups.update(group_id=a.id, name=name_a, add_from_group=b.id)
    check_group(u, "add_from_group", gid=a.id, name=name_a, size=4)
    check_members(a.id, [n1, n2, n4, n5], "after add_from_group")
    u = groups.update(group_id=a.id, name=name_a, remove_from_group=b.id)
    check_group(u, "remove_from_group", gid=a.id, name=name_a, size=2)
    check_members(a.id, [n1, n2], "after remove_from_group")
    say("ok: add_from_group / remove_from_group")

    # --- rename, then name=null ---------------------------------------------
    renamed = f"py-{tag}-renamed"
    u = groups.update(group_id=a.id, name=renamed)
    check_group(u, "rename", gid=a.id, name=renamed, size=2)
    u = groups.update(group_id=a.id, name=None)  # body is all nulls: {"name": null, "add": null, ...}
    check_group(u, "name=null", gid=a.id, name=None, size=2)
    check_group(groups.get(group_id=a.id), "retrieve after name=null", gid=a.id, name=None, size=2)
    say("ok: rename and name=null")

    # --- child_groups on create ----------------------------------------------
    c = groups.create(name=name_c, child_groups=[b.id])
    check_group(c, "create C with child B", name=name_c, child_groups=[b.id])
    check_group(groups.get(group_id=c.id), "retrieve C", gid=c.id, name=name_c, child_groups=[b.id])
    say("ok: child_groups on create")

    # --- replace (PUT) -------------------------------------------------------
    name_a2 = f"py-{tag}-A2"
    r = groups.replace(group_id=a.id, name=name_a2, members=[n6, n7, n6])
    check_group(r, "replace A", gid=a.id, name=name_a2, size=2, child_groups=[])
    check(r.created_at == a.created_at, "replace A: created_at must not change")
    check_members(a.id, [n6, n7], "after replace")
    r = groups.replace(group_id=b.id, members=[n4])
    check_group(r, "replace B without a name", gid=b.id, name=None, size=1)
    say("ok: replace")

    # --- list: newest first, paging, count is the total -----------------------
    pager = groups.list(page=0, page_size=2)
    page0 = pager.result
    ids0 = [g.id for g in pager.content()]
    check(page0.count == before + 3, f"list page 0: count {page0.count} != {before + 3}")
    check(page0.page == 0 and page0.page_size == 2,
          f"list page 0: page={page0.page} page_size={page0.page_size}")
    check(ids0 == [c.id, b.id], f"list page 0: expected newest first [C, B], got {ids0}")
    check(pager.has_next_page, "list page 0: SDK sees no next page")
    pager = pager.next_page()
    check(pager is not None and pager.result.page == 1, "list: next_page() did not return page 1")
    ids1 = [g.id for g in pager.content()]
    check(ids1[:1] == [a.id], f"list page 1: expected A first, got {ids1}")
    direct = groups.list(page=1, page_size=2)
    check([g.id for g in direct.content()] == ids1, "list page=1 directly differs from next_page()")
    check_group(direct.content()[0], "A as listed", gid=a.id, name=name_a2, size=2, child_groups=[])
    say("ok: list pagination (newest first, count is the total)")

    # --- validation errors -----------------------------------------------------
    expect_error("create with an invalid phone number",
                 lambda: groups.create(name=f"py-{tag}-bad", members=["not-a-number"]),
                 400, "syntax_invalid_parameter_format")
    expect_error("update adding an invalid phone number",
                 lambda: groups.update(group_id=a.id, name=name_a2, add=["+12ab"]),
                 400, "syntax_invalid_parameter_format")
    expect_error("create with a 21-character name",
                 lambda: groups.create(name="x" * 21, members=[n1]),
                 400, "syntax_constraint_violation")
    expect_error("rename to a 21-character name",
                 lambda: groups.update(group_id=a.id, name="x" * 21),
                 400, "syntax_constraint_violation")
    edge = groups.create(name="y" * 20)
    check_group(edge, "create with a 20-character name", name="y" * 20, size=0, child_groups=[])
    groups.delete(group_id=edge.id)
    say("ok: a 20-character name is accepted")

    missing = "01NOSUCHGROUP0000000000000"
    expect_error("add_from_group with an unknown group",
                 lambda: groups.update(group_id=a.id, name=name_a2, add_from_group=missing),
                 403, "unknown_group")
    expect_error("create with an unknown child group",
                 lambda: groups.create(name=f"py-{tag}-D", child_groups=[missing]),
                 403, "unknown_group")
    expect_error("retrieve an unknown group", lambda: groups.get(group_id=missing), 404)
    expect_error("update an unknown group",
                 lambda: groups.update(group_id=missing, name="x", add=[n1]), 404)
    expect_error("replace an unknown group",
                 lambda: groups.replace(group_id=missing, members=[n1]), 404)
    expect_error("members of an unknown group", lambda: groups.list_members(group_id=missing), 404)
    check_total(before + 3, "failed requests must not create groups")

    # --- a batch to a group -------------------------------------------------------
    # Scheduled an hour ahead, so that nothing is sent; Roster resolves groups at send time.
    batches = client.sms.batches
    target = groups.create(name=f"py-{tag}-S", members=[n1, n2])
    send_at = datetime.now(timezone.utc) + timedelta(hours=1)
    batch = batches.send_sms(to=[target.id, n3], from_="12345", body="Hello from the SDK",
                             client_reference=f"py-{tag}", send_at=send_at, delivery_report="none")
    check(batch.id, f"send_sms: expected a batch id, got {batch!r}")
    check(list(batch.to) == [target.id, n3], f"send_sms: to {batch.to!r}")
    check(batch.body == "Hello from the SDK", f"send_sms: body {batch.body!r}")
    check(not batch.canceled, "send_sms: a new batch is not canceled")
    fetched = batches.get(batch_id=batch.id)
    check(fetched.id == batch.id and fetched.client_reference == f"py-{tag}",
          f"get batch: {fetched!r}")
    listed = [b.id for b in batches.list(client_reference=f"py-{tag}").content()]
    check(listed == [batch.id], f"list batches by client_reference: {listed!r}")
    canceled = batches.cancel(batch_id=batch.id)
    check(canceled.canceled, f"cancel: expected canceled, got {canceled!r}")
    expect_error("get an unknown batch", lambda: batches.get(batch_id=missing), 404)
    groups.delete(group_id=target.id)
    say("ok: send a batch to a group, get, list, cancel")

    # --- a personalized batch, sent now -------------------------------------------
    # Roster sends it through its own sender; the Rust test reads the messages it logged.
    params = {"name": {n1: "Ann", "default": "friend"}, "code": {"default": "PY-1"}}
    personal = batches.send_sms(to=[n1, n2], from_="12345", body="Hi ${name}, your code is ${code}",
                                client_reference=f"py-{tag}-personal", parameters=params)
    check(personal.parameters == params, f"send_sms parameters: {personal.parameters!r}")
    fetched = batches.get(batch_id=personal.id)
    check(fetched.parameters == params, f"get batch parameters: {fetched.parameters!r}")
    say("ok: a personalized batch with parameters")

    # --- delete ------------------------------------------------------------------
    for g in (c, b, a):
        check(groups.delete(group_id=g.id) is None, f"delete {g.id}: expected no content")
        expect_error(f"retrieve deleted group {g.id}", lambda g=g: groups.get(group_id=g.id), 404)
    expect_error("delete an already deleted group", lambda: groups.delete(group_id=a.id), 404)
    check_total(before, "after deletes")
    say("ok: delete, then retrieve -> 404")

    say("all checks passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # e.g. connection refused, or a response the SDK could not parse
        traceback.print_exc()
        fail(f"unexpected error: {type(e).__name__}: {e}")

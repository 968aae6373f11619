"""A Jupyter client against `recur --kernel` (run by tests/jupyter_spec.lua).

usage: python3 tests/jupyter_kernel_test.py RECUR_BIN WORKDIR [kernel|notebook]

kernel:   starts the kernel through its kernelspec (recur --install-kernel --prefix WORKDIR),
          runs cells and checks their outputs, completion, inspection, is_complete, an error,
          an interrupt of an endless loop, a restart, and messages that must be refused
          (wrong signature, malformed JSON, unknown type) without the kernel dying.
notebook: executes examples/notebooks/rnn1_toy.ipynb headless with nbclient, checks outputs.
Prints "ok: ..." per check; exits non-zero at the first failure.
"""
import json
import os
import subprocess
import sys
import time
import uuid

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

HANG = 60  # seconds: a generous bound for anything the kernel should answer at once


def check(cond, what, detail=""):
    if not cond:
        print("FAIL: %s %s" % (what, detail), flush=True)
        sys.exit(1)
    print("ok: " + what, flush=True)


def install(recur, work):
    subprocess.run([recur, "--install-kernel", "--prefix", work], check=True)
    spec_dir = os.path.join(work, "share", "jupyter", "kernels", "recur")
    spec = json.load(open(os.path.join(spec_dir, "kernel.json")))
    check(spec["argv"][1:] == ["--kernel", "{connection_file}"], "kernelspec argv", spec)
    check(spec["interrupt_mode"] == "signal", "kernelspec interrupt_mode")
    check(os.path.exists(os.path.join(spec_dir, "logo-64x64.png")), "kernelspec logo")
    os.environ["JUPYTER_PATH"] = os.path.join(work, "share", "jupyter")
    ksm = KernelSpecManager()
    check("recur" in ksm.find_kernel_specs(), "jupyter_client finds the kernelspec")


def run(kc, code, allow_error=False):
    """Executes code; returns (reply content, list of iopub messages of this request)."""
    msg_id = kc.execute(code)
    outputs = []
    while True:
        msg = kc.get_iopub_msg(timeout=HANG)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        outputs.append(msg)
    reply = kc.get_shell_msg(timeout=HANG)
    check(reply["parent_header"]["msg_id"] == msg_id, "reply to " + code.splitlines()[0][:40])
    if not allow_error:
        check(reply["content"]["status"] == "ok", "no error in " + code.splitlines()[0][:40],
              reply["content"])
    return reply["content"], outputs


def stream_text(outputs):
    return "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream")


def as_shown(text):
    """The text as a frontend shows it: "\r" returns to the start of the line."""
    return "\n".join(line.split("\r")[-1] for line in text.split("\n"))


def of_type(outputs, t):
    return [m for m in outputs if m["msg_type"] == t]


def kernel_test(work):
    log = open(os.path.join(work, "kernel.log"), "w")
    km = KernelManager(kernel_name="recur")
    km.start_kernel(stdout=log, stderr=log, cwd=work)
    try:
        kernel_checks(km, log, work)
    finally:
        if km.is_alive():
            km.shutdown_kernel(now=True)


def kernel_checks(km, log, work):
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=HANG)
    check(km.is_alive(), "kernel started")

    info = kc.kernel_info(reply=True, timeout=HANG)["content"]
    check(info["language_info"]["name"] == "lua" and info["protocol_version"] == "5.3",
          "kernel_info", info)

    reply, out = run(kc, "1 + 1")
    res = of_type(out, "execute_result")
    check(len(res) == 1 and res[0]["content"]["data"]["text/plain"] == "2", "value of 1 + 1", out)
    check(reply["execution_count"] == 1, "execution_count 1")

    reply, out = run(kc, "x = 21\nprint('hello', x)\nx * 2")
    check(stream_text(out) == "hello\t21\n", "print goes to stream", out)
    res = of_type(out, "execute_result")
    check(len(res) == 1 and res[0]["content"]["data"]["text/plain"] == "42",
          "value of the last line", out)
    check(reply["execution_count"] == 2, "execution_count 2")

    _, out = run(kc, "print('a\\255b')")
    check(stream_text(out) == "a\ufffdb\n", "bytes that are not UTF-8 show as U+FFFD", out)

    _, out = run(kc, "io.stdout:write('out ', 1, '\\n'):flush()\nio.stderr:write('progress\\n')")
    streams = [(m["content"]["name"], m["content"]["text"]) for m in out if m["msg_type"] == "stream"]
    check(("stdout", "out 1\n") in streams and ("stderr", "progress\n") in streams,
          "io.stdout:write and io.stderr:write go to the notebook's streams", out)

    # io.read asks the frontend (stdin channel)
    msg_id = kc.execute("answer = io.read()\nanswer .. '!'", allow_stdin=True)
    req = kc.get_stdin_msg(timeout=HANG)
    check(req["msg_type"] == "input_request", "io.read sends an input_request", req)
    kc.input("forty-two")
    reply = kc.get_shell_msg(timeout=HANG)
    check(reply["content"]["status"] == "ok", "input_reply accepted", reply["content"])
    while True:
        msg = kc.get_iopub_msg(timeout=HANG)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_result":
            break
    check(msg["content"]["data"]["text/plain"] == "forty-two!", "io.read returns the line", msg)

    _, out = run(kc, "for i = 1, 3 do io.write('\\rstep ', i) end print()")
    check(as_shown(stream_text(out)) == "step 3\n", "progress line updates in place", out)

    _, out = run(kc, "t = recur.tensor({{1, 2}, {3, 4}})\nt")
    data = of_type(out, "execute_result")[0]["content"]["data"]
    check("<table" in data.get("text/html", "") and "<td>4</td>" in data["text/html"],
          "small tensor as an HTML table", data)
    check(data["text/plain"].strip() != "", "tensor as text")
    _, out = run(kc, "recur.display(recur.zeros(100, 100))")
    data = of_type(out, "display_data")[0]["content"]["data"]
    check("text/html" not in data and data["text/plain"], "big tensor: text only")
    _, out = run(kc, "for i = 1, 3 do recur.display('epoch ' .. i, {id = 'p'}) end")
    check([m["msg_type"] for m in of_type(out, "display_data") + of_type(out, "update_display_data")]
          == ["display_data", "update_display_data", "update_display_data"], "display id updates")

    reply, out = run(kc, "local function f() error('boom') end\nf()", allow_error=True)
    check(reply["status"] == "error" and "boom" in reply["evalue"], "error reply", reply)
    err = of_type(out, "error")
    check(len(err) == 1 and any("traceback" in l for l in err[0]["content"]["traceback"]),
          "error with traceback", err)

    c = kc.complete("recur.zer", 9, reply=True, timeout=HANG)["content"]
    check("recur.zeros" in c["matches"] and c["cursor_start"] == 0 and c["cursor_end"] == 9,
          "complete recur.zer", c)
    c = kc.complete("y = math.fl", 11, reply=True, timeout=HANG)["content"]
    check(c["matches"] == ["math.floor"] and c["cursor_start"] == 4, "complete math.fl", c)
    c = kc.complete("zzz_nothing", 11, reply=True, timeout=HANG)["content"]
    check(c["matches"] == [], "complete with no match is []", c)

    r = kc.inspect("recur.plot.lines", 16, reply=True, timeout=HANG)["content"]
    check(r["found"] and "function plot.lines" in r["data"]["text/plain"], "inspect recur.plot.lines", r)
    r = kc.inspect("no_such_thing", 5, reply=True, timeout=HANG)["content"]
    check(not r["found"], "inspect of an unknown name")

    for code, want in [("for i = 1, 3 do", "incomplete"), ("x = 1", "complete"),
                       ("x = = 1", "invalid"), ("1 +", "incomplete")]:
        kc.is_complete(code)
        r = kc.get_shell_msg(timeout=HANG)["content"]
        check(r["status"] == want, "is_complete %r" % code, r)

    # an endless loop, interrupted (SIGINT, interrupt_mode signal)
    msg_id = kc.execute("while true do end")
    while True:
        msg = kc.get_iopub_msg(timeout=HANG)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
            break
    time.sleep(0.5)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=HANG)
    check(reply["content"]["status"] == "error" and "interrupted" in reply["content"]["evalue"],
          "endless loop interrupted", reply["content"])
    before, out = run(kc, "x")
    check(of_type(out, "execute_result")[0]["content"]["data"]["text/plain"] == "21",
          "state kept after the interrupt")

    # refused messages: a wrong signature (the code would write a file), malformed JSON, an
    # unknown type; none gets a reply, none runs, the kernel stays up
    marker = os.path.join(work, "must_not_exist")
    bad = kc.session.clone()
    bad.key = b"not-the-key"
    bad.auth = None
    import hmac, hashlib
    bad.auth = hmac.HMAC(b"not-the-key", digestmod=hashlib.sha256)
    m = bad.msg("execute_request", {"code": "io.open(%r, 'w'):close()" % marker, "silent": False,
                                    "store_history": True, "user_expressions": {},
                                    "allow_stdin": False, "stop_on_error": True})
    bad.send(kc.shell_channel.socket, m)
    # malformed JSON in the content, correctly signed
    s = kc.session
    h = s.pack(s.msg_header("execute_request"))
    parts = [h, b"{}", b"{}", b"{not json"]
    kc.shell_channel.socket.send_multipart([b"<IDS|MSG>", s.sign(parts)] + parts)
    kc.shell_channel.socket.send_multipart([b"<IDS|MSG>", b"00", b"x"])
    s.send(kc.shell_channel.socket, s.msg("no_such_request", {}))
    reply, out = run(kc, "'still alive'")
    check(of_type(out, "execute_result")[0]["content"]["data"]["text/plain"] == "still alive",
          "kernel alive after refused messages")
    check(not os.path.exists(marker), "a wrong signature runs no code")
    check(reply["execution_count"] == before["execution_count"] + 1,
          "refused messages count no execution", (before, reply))
    log.flush()
    text = open(os.path.join(work, "kernel.log")).read()
    check("bad signature" in text, "bad signature logged", text)
    check("malformed JSON" in text, "malformed JSON logged", text)
    check("unknown type no_such_request" in text, "unknown type logged", text)

    km.restart_kernel(now=False)
    kc.wait_for_ready(timeout=HANG)
    reply, out = run(kc, "x")
    check(of_type(out, "execute_result")[0]["content"]["data"]["text/plain"] == "nil",
          "restart gives a fresh state")
    check(reply["execution_count"] == 1, "restart resets execution_count")

    kc.stop_channels()
    km.shutdown_kernel(now=False)
    check(not km.is_alive(), "shutdown")


def notebook_test(root, work):
    import nbformat
    from nbclient import NotebookClient

    path = os.path.join(root, "examples", "notebooks", "rnn1_toy.ipynb")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="recur", timeout=600, startup_timeout=HANG,
                            resources={"metadata": {"path": os.path.dirname(path)}})
    client.execute()
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outs if o.output_type == "error"]
    check(not errors, "notebook runs without error", errors)
    pngs = [o for o in outs if o.output_type == "display_data" and "image/png" in o.data]
    check(len(pngs) >= 1, "learning-curve figure inline")
    import base64
    check(base64.b64decode(pngs[0].data["image/png"])[:8] == b"\x89PNG\r\n\x1a\n", "figure is a PNG")
    texts = "".join(o.get("text", "") for o in outs if o.output_type == "stream")
    results = [o.data["text/plain"] for o in outs if o.output_type == "execute_result"]
    check("final loss" in texts, "training reported its final loss", texts[-500:])
    final = float(texts.split("final loss")[-1].split()[0])
    nothing_learned = 0.661563  # entropy of Y with no memory (r2rt-reference.md, section 1)
    check(final < nothing_learned, "the toy RNN learned something (%.4f < %.4f)" % (final, nothing_learned))
    check(any("text/html" in o.data for o in outs if o.output_type == "execute_result"),
          "the softmax weights as an HTML table")
    nbformat.write(nb, os.path.join(work, "rnn1_toy.out.ipynb"))


def main():
    recur, work, what = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "kernel"
    recur = os.path.abspath(recur)
    os.makedirs(work, exist_ok=True)
    install(recur, work)
    if what == "kernel":
        kernel_test(work)
    else:
        notebook_test(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), work)


if __name__ == "__main__":
    main()

"""`model logs` and `model requests`: the server's merged logs and the request inspector."""

import codecs
import json
import sys
import time

import click

from .client import Client
from .tables import console
from .terminal import terminal_safe


def escape(text):
    """Recorded text (a client's prompt, a model's answer, names, errors) for rich: without
    terminal controls (terminal_safe), and with rich's markup escaped (rich is imported when a
    record is printed: it is for drawing only)."""
    from rich.markup import escape as rich_escape
    return rich_escape(terminal_safe(text))


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines")
@click.option("--no-engines", is_flag=True, help="Leave out the runners' (engines') logs")
@click.option("-n", "--tail", type=int, help="Only the last N lines")
def logs(follow, no_engines, tail):
    """Show the server's, the scheduler's and the runners' logs, merged."""
    params = {"follow": str(follow).lower(), "no-engines": str(no_engines).lower()}
    if tail is not None:
        params["tail"] = str(tail)
    # Logs hold what runners printed and what clients sent: through terminal_safe, decoded as
    # it comes (a character split between two chunks waits for its end).
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        with Client().stream("GET", "/logs", params=params) as resp:
            for chunk in resp.iter_bytes():
                sys.stdout.buffer.write(terminal_safe(decoder.decode(chunk)).encode())
                sys.stdout.buffer.flush()
    except KeyboardInterrupt:
        pass


def _loads(text):
    try:
        return json.loads(text) if text else None
    except (TypeError, ValueError, RecursionError):
        return None


def _prompt(request):
    data = _loads(request)
    if not isinstance(data, dict):
        return str(request or "")
    if data.get("messages"):
        parts = []
        for m in data["messages"]:
            content = m.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", f"<{p.get('type')}>") for p in content
                                   if isinstance(p, dict))
            parts.append(f"{m.get('role', '?')}: {content or ''}")
        return "\n".join(parts)
    for key in ("prompt", "input", "query"):
        if key in data:
            return str(data[key])
    return json.dumps(data)


def _answer(response):
    data = _loads(response)
    if not isinstance(data, dict):
        return str(response or "")
    out = []
    for choice in data.get("choices") or []:
        msg = choice.get("message") or {}
        if msg.get("reasoning_content"):
            out.append(f"(thinking) {msg['reasoning_content']}")
        if msg.get("content"):
            out.append(str(msg["content"]))
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            out.append(f"tool call {fn.get('name')}({fn.get('arguments')})")
        if choice.get("text"):
            out.append(str(choice["text"]))
    if data.get("data") and isinstance(data["data"], list):
        out.append(f"<{len(data['data'])} result(s)>")
    if isinstance(data.get("content"), list):  # Anthropic
        out.extend(str(b.get("text", "")) for b in data["content"] if isinstance(b, dict))
    return "\n".join(out) if out else json.dumps(data)[:500]


def _seconds(value):
    return f"{value:.2f}s" if isinstance(value, (int, float)) else "-"


def print_record(r, event=None):
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.get("timestamp") or 0))
    status = r.get("status_code")
    color = "green" if status == 200 else "red"
    head = f"[bold]{escape(when)}[/bold] {escape(r.get('model', ''))} " \
           f"[{color}]{escape(status)}[/{color}] {escape(r.get('method', ''))} " \
           f"{escape(r.get('url', ''))}"
    if event:
        head = f"[dim]{escape(event)}[/dim] " + head
    console().print(head)
    if r.get("user_agent"):
        console().print(f"  [dim]client:[/dim] {escape(r['user_agent'])}")
    console().print(f"  [cyan]prompt:[/cyan] {escape(_prompt(r.get('request')))}")
    if r.get("error"):
        console().print(f"  [red]error:[/red] {escape(r['error'])}")
    else:
        console().print(f"  [magenta]response:[/magenta] {escape(_answer(r.get('response')))}")
    usage = r.get("usage") or {}
    timings = r.get("timings") or {}
    console().print(f"  [dim]tokens:[/dim] prompt {escape(usage.get('prompt_tokens', '-'))}, "
                  f"completion {escape(usage.get('completion_tokens', '-'))}"
                  f"  [dim]finish:[/dim] {escape(r.get('finish_reason') or '-')}"
                  f"  [dim]ttft:[/dim] {_seconds(timings.get('ttft'))}"
                  f"  [dim]total:[/dim] {_seconds(timings.get('duration'))}"
                  f"{'  [dim]streamed[/dim]' if r.get('streamed') else ''}")
    console().print()


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Print new requests as they finish")
@click.option("--include-existing", is_flag=True, help="With -f: print the recorded ones first")
@click.option("--model", help="Only this model's requests")
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON")
def requests(follow, include_existing, model, as_json):
    """Show the last requests and responses of each model (the request inspector)."""
    params = {}
    if model:
        params["model"] = model
    client = Client()
    if not follow:
        groups = client.json("GET", "/engines/requests", params=params)
        if as_json:
            click.echo(json.dumps(groups, indent=2))
            return
        if not groups:
            click.echo("No requests recorded yet.")
        for group in groups:
            console().print(f"[bold underline]{escape(group['model'])}[/bold underline] "
                          f"({escape(group['count'])} request(s))")
            for r in group["records"]:
                print_record(r)
        return
    if include_existing:
        params["include_existing"] = "true"
    try:
        with client.stream("GET", "/engines/requests", params=params,
                           headers={"Accept": "text/event-stream"}) as resp:
            event = None
            for line in resp.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("existing_request", "new_request"):
                    record = _loads(line[5:].strip())
                    if not isinstance(record, dict):
                        continue
                    if as_json:
                        click.echo(json.dumps(record))
                    else:
                        print_record(record, event)
                    sys.stdout.flush()
    except KeyboardInterrupt:
        pass

"""`model run MODEL [PROMPT]`: chat with a model, one-shot or interactively, as `docker model run`.

1. ``GET /models/{model}``; a model that is not in the store is pulled first (client-side
   auto-pull, as DMR's CLI does: the server itself never pulls).
2. Preload: an empty-messages chat request with ``X-Preload-Only: true``, so loading time is not
   mistaken for a slow answer.
3. With a PROMPT (or text piped on stdin) one streamed answer; otherwise a REPL with history:
   ``/bye``, ``/set system <text>``, ``/set num_ctx <n>``, ``/clear``, ``\"\"\"`` for multi-line
   input, ``/?`` for help. In either, ``@file`` includes a file's text and an image path sends
   the image (:mod:`.run_prompt`).

The CLI is a client of the server's OpenAI routes here, as everywhere else a client of its HTTP
API: the OpenAI dialect plugin serves them, and nothing here imports it.

Answers stream from ``/engines/v1/chat/completions`` (SSE). In a terminal they are rendered as
Markdown while they arrive (the tail that fits the screen, then the whole answer once done); in a
pipe the raw text is written as it arrives, so ``model run m "..." > file`` keeps plain text.
A model's answer is untrusted text like any other (a prompt can make a model write escape
sequences): both printers and every error print it through ``terminal_safe``.
"""

import json
import os
import sys
import time

import click

from ..streams import StreamError, sse_events
from .client import Client, error_text, fail
from .http import ConnectError, HTTPError
from .run_prompt import PromptError, user_content
from .terminal import terminal_safe

HELP = """Available commands:
  /set system <text>   Set the system message
  /set num_ctx <n>     Use a context of n tokens from the next message on (this session)
  /clear               Forget the conversation (keeps the system message)
  /bye                 Exit
  /?, /help            Show this help
  \"\"\"                  Begin or end a multi-line message
@file includes a file's text; a path to a .png/.jpg/.jpeg/.webp sends the image
(models with a multimodal projector only). Ctrl+D exits too; Ctrl+C stops an answer."""


class ChatError(Exception):
    pass


def one_line(message):
    """The first line of a server error (a failed load carries the runner's log after it),
    safe to print."""
    lines = terminal_safe(message).strip().splitlines() or ["failed"]
    return lines[0] + (" (the server log has the details)" if len(lines) > 1 else "")


class Chat:
    def __init__(self, client, model, chat_url, markdown, debug=False, max_tokens=None):
        self.client = client
        self.max_tokens = max_tokens
        self.model = model
        self.chat_url = chat_url
        self.markdown = markdown
        self.debug = debug
        self.messages = []
        self.system = None

    def request_messages(self):
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.messages

    def ask(self, prompt):
        """Send one user turn, print the streamed answer, keep both in the history."""
        try:
            content = user_content(prompt)
        except PromptError as e:
            raise ChatError(str(e)) from None
        self.messages.append({"role": "user", "content": content})
        try:
            answer = self.stream(self.request_messages())
        except BaseException:
            self.messages.pop()
            raise
        self.messages.append({"role": "assistant", "content": answer})
        return answer

    def set_context(self, size):
        """``/set num_ctx``: the context for this session's next requests, as Ollama's option
        does: a `_configure` that is not persisted (the idle runner reloads with it)."""
        if self.chat_url != "/engines/v1/chat/completions":
            raise ChatError("/set num_ctx needs the modelrunner server (not --openaiurl)")
        try:
            resp = self.client.http.post("/engines/_configure", json={
                "model": self.model, "context-size": size, "persist": False})
        except (ConnectError, HTTPError) as e:
            raise ChatError(f"the connection to the server failed: {e}") from None
        if resp.status_code >= 400:
            raise ChatError(error_text(resp))

    def stream(self, messages):
        body = {"model": self.model, "messages": messages, "stream": True}
        if self.max_tokens:
            body["max_tokens"] = self.max_tokens
        if self.debug:
            click.echo(f"> POST {self.chat_url} {json.dumps(body)}", err=True)
        printer = MarkdownPrinter() if self.markdown else RawPrinter()
        text = []
        try:
            with self.client.http.stream("POST", self.chat_url, json=body) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise ChatError(error_text(resp))
                for data in sse_events(self._lines(resp)):
                    for choice in data.get("choices") or []:
                        delta = (choice.get("delta") or {}).get("content")
                        if delta:
                            text.append(delta)
                            printer.add(delta)
        except StreamError as e:
            raise ChatError(str(e)) from None
        except ConnectError:
            raise ChatError(f"modelrunner is not running at {self.client.base_url} "
                            "(start it with: model serve)") from None
        except HTTPError as e:
            raise ChatError(f"the connection to the server failed: {e}") from None
        finally:
            printer.close()
        return "".join(text)

    def _lines(self, resp):
        """The answer's lines as bytes for ``sse_events``, echoed with --debug."""
        for line in resp.iter_lines():
            if self.debug:
                click.echo(f"< {terminal_safe(line)}", err=True)
            yield line.encode() + b"\n"


class RawPrinter:
    """Plain text as it arrives: for pipes and --color=no."""

    def __init__(self):
        self.wrote = False
        self.last = ""

    def add(self, delta):
        delta = terminal_safe(delta)
        sys.stdout.write(delta)
        sys.stdout.flush()
        self.wrote = True
        self.last = delta

    def close(self):
        if self.wrote and not self.last.endswith("\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()


class MarkdownPrinter:
    """Markdown rendered live: the tail that fits the terminal while streaming, then the whole
    answer printed once (so nothing taller than the screen is ever redrawn twice)."""

    def __init__(self):
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.text = ""
        self.live = Live(console=self.console, auto_refresh=False, transient=True,
                         vertical_overflow="crop")
        self.started = False
        self.last_draw = 0.0

    def add(self, delta):
        self.text += terminal_safe(delta)
        if not self.started:
            self.live.start()
            self.started = True
        now = time.monotonic()
        if now - self.last_draw >= 0.05:  # redraw at most 20 times a second
            self.last_draw = now
            self.live.update(_Tail(self.text), refresh=True)

    def close(self):
        from rich.markdown import Markdown

        if self.started:
            self.live.stop()
        if self.text.strip():
            self.console.print(Markdown(self.text))


class _Tail:
    """The last screenful of a Markdown rendering."""

    def __init__(self, text):
        self.text = text

    def __rich_console__(self, console, options):
        from rich.markdown import Markdown
        from rich.segment import Segment

        lines = console.render_lines(Markdown(self.text), options, pad=False)
        height = max(1, console.size.height - 1)
        for line in lines[-height:]:
            yield from line
            yield Segment.line()


def ensure_model(client, model):
    """Pull the model when the store lacks it (DMR's client-side auto-pull). The first call of
    `model run`: a client made with autostart starts a local server here if none answers."""
    resp = client.send("GET", f"/models/{model}")
    if resp.status_code == 200:
        return
    if resp.status_code != 404:
        fail(error_text(resp))
    click.echo(f"Unable to find model '{model}' locally. Pulling from the server.", err=True)
    from .commands import pull_model  # commands imports this module: a late import
    pull_model(model)
    resp = client.http.get(f"/models/{model}")
    if resp.status_code != 200:
        fail(error_text(resp))


def preload(client, model, chat_url):
    try:
        resp = client.http.post(chat_url, json={"model": model, "messages": []},
                                headers={"X-Preload-Only": "true"})
    except HTTPError as e:
        fail(f"the connection to the server failed: {e}")
    if resp.status_code >= 400:
        fail(one_line(error_text(resp)))


def read_input(prompt_text, continuation):
    """One user message from the terminal; handles \"\"\" multi-line blocks. None at EOF."""
    line = input(prompt_text)
    stripped = line.strip()
    if not stripped.startswith('"""'):
        return line
    rest = stripped[3:]
    if rest.endswith('"""') and len(rest) >= 3:
        return rest[:-3]
    lines = [rest] if rest else []
    while True:
        line = input(continuation)
        if line.rstrip().endswith('"""'):
            last = line.rstrip()[:-3]
            if last:
                lines.append(last)
            return "\n".join(lines)
        lines.append(line)


def interactive(chat):
    tty = sys.stdin.isatty()
    if tty:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        click.echo('Interactive chat mode started. Type "/bye" to exit, "/?" for help.')
    prompt_text, continuation = ("> ", "... ") if tty else ("", "")
    while True:
        try:
            text = read_input(prompt_text, continuation)
        except EOFError:
            if tty:
                click.echo()
            return
        except KeyboardInterrupt:
            click.echo("\nUse Ctrl + d or /bye to exit.")
            continue
        command = text.strip()
        if not command:
            continue
        if command == "/bye":
            return
        if command in ("/?", "/help"):
            click.echo(HELP)
            continue
        if command == "/clear":
            chat.messages = []
            click.echo("Cleared the conversation.")
            continue
        if command.startswith("/set"):
            parts = command.split(None, 2)
            if len(parts) >= 2 and parts[1] == "system":
                chat.system = parts[2] if len(parts) > 2 else None
                click.echo("Set system message." if chat.system else "Cleared system message.")
            elif len(parts) >= 2 and parts[1] == "num_ctx":
                size = parts[2].strip() if len(parts) > 2 else ""
                if not size.isdigit() or int(size) < 1:
                    click.echo("Usage: /set num_ctx <tokens>, a positive number")
                    continue
                try:
                    chat.set_context(int(size))
                    click.echo(f"Set context size to {int(size)} tokens.")
                except ChatError as e:
                    click.echo(f"Error: {one_line(e)}", err=True)
            else:
                click.echo("Usage: /set system <text> | /set num_ctx <tokens>")
            continue
        if command.startswith("/") and " " not in command:
            click.echo(f"Unknown command '{command}'. Type /? for help.")
            continue
        try:
            chat.ask(text)
        except KeyboardInterrupt:
            click.echo()
        except ChatError as e:
            click.echo(f"Error: {one_line(e)}", err=True)


@click.command()
@click.argument("model")
@click.argument("prompt", nargs=-1)
@click.option("--color", type=click.Choice(["auto", "yes", "no"]), default="auto",
              show_default=True, help="Render Markdown (auto: when stdout is a terminal)")
@click.option("--debug", is_flag=True, help="Print the requests and the raw stream on stderr")
@click.option("-d", "--detach", is_flag=True, help="Load the model and return")
@click.option("--openaiurl", help="Chat with this OpenAI-compatible base URL instead "
                                  "(no pull, no preload), e.g. http://host:8080/v1")
@click.option("--max-tokens", type=click.IntRange(min=1),
              help="Stop each answer after this many tokens (not in DMR's CLI)")
def run(model, prompt, color, debug, detach, openaiurl, max_tokens):
    """Chat with a model: one answer for PROMPT (or piped text), else an interactive chat.

    A model missing from the store is pulled first; with no server answering at a local
    MODEL_RUNNER_HOST one is started in the background (`model stop-runner` stops it).
    """
    if openaiurl:
        client = Client(openaiurl)
        chat_url = "/chat/completions"
    else:
        client = Client(autostart=True)  # no server on this machine yet: start one, as DMR does
        chat_url = "/engines/v1/chat/completions"
        ensure_model(client, model)
        from .run_image import is_image_model, run_image
        if is_image_model(client, model):  # its engine draws: write PNGs instead of chatting
            if detach:
                return
            text = " ".join(prompt)
            if not sys.stdin.isatty():
                text = (text + "\n\n" + sys.stdin.read()).strip() if text else sys.stdin.read()
            if not text.strip():
                fail("an image model needs a prompt")
            run_image(client, model, text.strip())
            return
        from .run_audio import is_transcription_model, run_audio
        if is_transcription_model(client, model):  # it transcribes: PROMPT is audio files
            if not detach:
                run_audio(client, model, prompt)
            return
        preload(client, model, chat_url)
    if detach:
        return
    markdown = color == "yes" or (color == "auto" and sys.stdout.isatty()
                                  and os.environ.get("TERM") != "dumb")
    chat = Chat(client, model, chat_url, markdown, debug, max_tokens)
    text = " ".join(prompt)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        if piped.strip():
            text = f"{text}\n\n{piped}" if text else piped
    if text.strip():
        try:
            chat.ask(text)
        except ChatError as e:
            fail(one_line(e))
        except KeyboardInterrupt:
            sys.exit(130)
        return
    if not sys.stdin.isatty():
        fail("no prompt: give one as an argument or on stdin")
    interactive(chat)

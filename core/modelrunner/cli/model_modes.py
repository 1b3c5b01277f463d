"""What `model run` does with a model whose engines do not chat: the server says (GET
/engines/options: each engine's formats and modes); the CLI names no engine nor format."""


def serves_only(client, model, mode):
    """Whether the engines that serve the stored ``model``'s format all serve ``mode`` and none
    chats (``completion``). A server that does not describe its engines (no GET
    /engines/options) gets a chat, as DMR's CLI sends. A missing model exits with the server's
    error (``client`` is a :class:`.client.Client`)."""
    info = client.json("GET", f"/models/{model}")
    model_format = (info.get("config") or {}).get("format") or ""
    if not model_format:
        return False
    resp = client.send("GET", "/engines/options")
    if resp.status_code != 200:
        return False
    modes = [set(engine.get("modes") or ()) for engine in (resp.json() or {}).values()
             if model_format in (engine.get("formats") or ())]
    return bool(modes) and all(mode in m and "completion" not in m for m in modes)

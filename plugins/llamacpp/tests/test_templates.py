"""Which chat template a runner gets when its GGUF has none, and why (templates.py), and the
flags that carry it to llama-server (args.py). Pure: nothing is started; the vocabulary test
reads SmolLM2's real GGUF, and one test asks the built llama-server for its list."""

import re

import pytest

from modelrunner import Bundle, RunnerConfig
from modelrunner_llamacpp import templates
from modelrunner_llamacpp.args import build_argv
from modelrunner_llamacpp.engine import binary_info


def pick(arch, *tokens):
    return templates.builtin_for({"general.architecture": arch}, tokens)[0]


@pytest.mark.parametrize("arch, tokens, expected", [
    ("gemma3", (), "gemma"),
    ("gemma2", (), "gemma"),
    ("gemma", ("<start_of_turn>", "<end_of_turn>"), "gemma"),
    ("llama", ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), "llama3"),
    ("llama", ("<|im_start|>", "<|im_end|>"), "chatml"),  # SmolLM2: llama, ChatML tokens
    ("llama", (), "llama2"),
    ("llama", ("[INST]", "[/INST]"), "mistral-v3"),
    ("llama", ("[SYSTEM_PROMPT]", "[INST]", "[/INST]"), "mistral-v7"),
    ("llama4", ("<|header_start|>", "<|eot|>"), "llama4"),
    ("phi3", ("<|user|>", "<|assistant|>", "<|end|>"), "phi3"),
    ("phi3", ("<|im_start|>", "<|im_end|>", "<|im_sep|>"), "phi4"),
    ("qwen2", (), "chatml"),
    ("qwen3", ("<|im_start|>", "<|im_end|>"), "chatml"),
    ("command-r", (), "command-r"),
    ("granite", (), "granite"),
    ("deepseek2", (), "deepseek3"),
    ("gpt-oss", (), "gpt-oss"),
])
def test_a_templateless_gguf_gets_its_own_format(arch, tokens, expected):
    assert pick(arch, *tokens) == expected


def test_an_unknown_architecture_with_no_telling_tokens_gets_nothing():
    name, why = templates.builtin_for({"general.architecture": "mamba"}, ())
    assert name is None and "mamba" in why


def test_every_chosen_template_is_one_llama_cpp_has():
    chosen = {name for _, name in templates.TOKEN_RULES} | set(templates.ARCH_RULES.values())
    assert chosen <= templates.BUILTIN


def test_the_built_in_list_is_the_built_llama_servers(engine, llama_server):
    help_text = binary_info(engine.binary())._run("--help")
    listed = help_text.split("list of built-in templates:", 1)[1].split("(env:", 1)[0]
    assert set(re.findall(r"[\w.\-]+", listed)) == templates.BUILTIN


def test_smollm2s_vocabulary_has_chatml_tokens(smollm2):
    assert templates.vocab_markers(smollm2) == {"<|im_start|>", "<|im_end|>"}


GEMMA3 = {"general.architecture": "gemma3"}


def resolve(config=None, packaged=False, embedded=False, meta=GEMMA3, tokens=()):
    return templates.resolve(config or RunnerConfig(), packaged=packaged, embedded=embedded,
                             meta=meta, tokens=tokens)


def test_what_wins_and_why():
    assert resolve().why.startswith("built-in gemma: the GGUF has none; gemma3 architecture")
    assert resolve(embedded=True) == ("embedded", None, None, "embedded in the GGUF")
    assert resolve(packaged=True, embedded=True).source == "packaged"
    configured = RunnerConfig(extra={"llamacpp": {"chat-template": "llama3"}})
    assert resolve(configured, packaged=True, embedded=True) == (
        "configured", "llama3", None, "built-in llama3, configured")
    flag = RunnerConfig(runtime_flags=["--chat-template=chatml"], extra=configured.extra)
    assert resolve(flag).name == "chatml"  # the runtime flag over the block
    text = RunnerConfig(extra={"llamacpp": {"chat-template": "{{ messages }}"}})
    assert resolve(text).text == "{{ messages }}"
    auto = RunnerConfig(extra={"llamacpp": {"chat-template": "auto"}})
    assert resolve(auto).source == "built-in"
    assert resolve(meta={"general.architecture": "mamba"}).source == "default"


def test_a_bogus_name_is_refused_with_the_list():
    with pytest.raises(ValueError, match="not one of llama.cpp's built-in templates.*gemma"):
        templates.check("gemma-7")
    with pytest.raises(ValueError):
        templates.check("{{ messages }}", text_allowed=False)  # a runtime flag takes names only
    templates.check("{% for m in messages %}{{ m.content }}{% endfor %}")


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.gguf").write_bytes(b"GGUF")
    return Bundle(model_id="m", path=tmp_path, config={"format": "gguf"})


def argv(bundle, config=None, meta=None, tokens=()):
    return build_argv("llama-server", bundle, config or RunnerConfig(), "unix:///r.sock",
                      has=lambda flag: True, meta=meta, tokens=tokens)


def tail_of(args, flag):
    return args[args.index(flag):args.index(flag) + 2]


def test_a_templateless_chatml_model_keeps_jinja_and_names_chatml(bundle):
    args = argv(bundle, meta={"general.architecture": "llama"},
                tokens={"<|im_start|>", "<|im_end|>"})
    assert "--jinja" in args and tail_of(args, "--chat-template") == ["--chat-template", "chatml"]


def test_a_templateless_gemma_runs_llama_cpps_own_gemma_renderer(bundle):
    # with --jinja llama-server would take "gemma" as the Jinja text of the template itself
    args = argv(bundle, meta=GEMMA3)
    assert "--jinja" not in args and "--no-jinja" in args
    assert tail_of(args, "--chat-template") == ["--chat-template", "gemma"]


def test_a_gguf_with_its_own_template_gets_no_template_flag(bundle):
    args = argv(bundle, meta={**GEMMA3, "tokenizer.chat_template": "{{ x }}"})
    assert "--jinja" in args and "--chat-template" not in args
    assert "--chat-template" not in argv(bundle)  # metadata not read: as before


def test_a_packaged_template_file_beats_the_built_in(bundle):
    (bundle.path / "model" / "template.jinja").write_text("{{ messages }}")
    args = argv(bundle, meta=GEMMA3)
    assert tail_of(args, "--chat-template-file")[1].endswith("template.jinja")


def test_the_runtime_flag_is_passed_once_with_its_renderer(bundle):
    args = argv(bundle, RunnerConfig(runtime_flags=["--chat-template", "gemma", "--temp", "0"]),
                meta={"general.architecture": "llama"})
    assert args.count("--chat-template") == 1 and "--no-jinja" in args
    assert args[-2:] == ["--temp", "0"]


def test_embeddings_get_no_chat_template(bundle):
    args = argv(bundle, RunnerConfig(mode="embedding"), meta=GEMMA3)
    assert "--chat-template" not in args

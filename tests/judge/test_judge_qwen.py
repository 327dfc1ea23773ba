"""The local Qwen2.5-VL judge end to end through the real transformers classes, on a tiny random model.

The model is a randomly initialised ``Qwen2_5_VLForConditionalGeneration`` (1 text layer, 1 vision block,
hidden size 32) with a real ``Qwen2_5_VLProcessor`` (a character-level tokenizer carrying Qwen's special
tokens and a chat template), saved with ``save_pretrained`` and loaded back by the backend from that folder,
so every step a real judge takes runs: chat template, image processor, left-padded batching, greedy
``generate``, decoding. Its answers are noise, so every case must come back as a counted failure row with
the raw text, never a score.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from multiid_bench.judge.scorer import JudgeItem, VlmJudge
from multiid_bench.judge.stats import aggregate_judge

pytest.importorskip("transformers")


def _tiny_qwen(folder: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    vocab = {c: i for i, c in enumerate([chr(i) for i in range(32, 127)] + ["\n"])}
    for s in specials:
        vocab[s] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="?"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # one token per word (unknown words -> "?"): short prompts
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    template = (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for c in message['content'] %}"
        "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}"
        "{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    images = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14, merge_size=2,
                                   temporal_patch_size=2)
    processor = Qwen2_5_VLProcessor(image_processor=images, tokenizer=fast, video_processor=Qwen2VLVideoProcessor(),
                                    chat_template=template)
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=16384,
                         rope_scaling={"type": "mrope", "mrope_section": [2, 2, 4]},
                         eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"],
                         bos_token_id=vocab["<|endoftext|>"]),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[0]),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"],
    )
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_qwen(tmp_path_factory.mktemp("tiny_qwen25vl"))


def _items(tmp_path: Path) -> list[JudgeItem]:
    out = []
    for i, (tt, n) in enumerate([("single_character", 1), ("scene_character", 2), ("multi_object", 2)]):
        inputs = []
        for k in range(n):
            p = tmp_path / f"in{i}{k}.png"
            Image.new("RGB", (64 + 16 * k, 48), (30 * i, 60 * k, 90)).save(p)
            inputs.append(p)
        out_p = tmp_path / f"out{i}.png"
        Image.new("RGB", (56, 72), (i, 200, 3)).save(out_p)
        out.append(JudgeItem(f"case{i}", tt, f"Instruction number {i}.", tuple(inputs), out_p))
    return out


def test_tiny_qwen_judge_runs_and_unparseable_answers_become_counted_failures(tiny_model: Path, tmp_path: Path) -> None:
    from multiid_bench.judge.backends import QwenVLJudgeBackend

    backend = QwenVLJudgeBackend(model_dir=tiny_model, batch_size=2, max_new_tokens=6)
    judge = VlmJudge(backend, cache_root=tmp_path / "cache")
    judge.load("cpu")
    assert backend.dtype_name == "float32"  # bf16 only on CUDA
    assert judge.card["judge"].startswith(f"transformers:{tiny_model.name}@local-")
    results = judge.judge(_items(tmp_path))
    assert [r.status for r in results] == ["failed", "failed", "failed"]
    for r in results:
        assert r.prompt_following is None and r.subject_consistency is None and r.overall is None
        for kind in ("prompt_following", "subject_consistency"):
            ans = r.answers[kind]
            assert isinstance(ans["raw"], str) and ans["attempts"] == 1 and ans["source"] == "none"
    assert judge.counters == {"questions": 6, "requests": 6, "cached": 0, "failed": 3}
    agg = aggregate_judge([r.score() for r in results])
    assert agg["average"]["n"] == 0 and agg["average"]["failed"] == 3 and agg["average"]["overall"] is None


def test_tiny_qwen_batching_does_not_change_answers(tiny_model: Path, tmp_path: Path) -> None:
    from multiid_bench.judge.backends import JudgeRequest, QwenVLJudgeBackend, prepare_judge_images

    items = _items(tmp_path)
    requests = [JudgeRequest(f"Rate {it.instruction}", prepare_judge_images(it.inputs, it.output)) for it in items]
    one = QwenVLJudgeBackend(model_dir=tiny_model, batch_size=1, max_new_tokens=5)
    three = QwenVLJudgeBackend(model_dir=tiny_model, batch_size=3, max_new_tokens=5)
    one.load("cpu")
    three.load("cpu")
    a, b = one.ask(requests), three.ask(requests)
    assert [x.text for x in a] == [x.text for x in b]
    assert all(x.error is None and len(x.text) > 0 for x in a)


def test_missing_model_folder_names_the_fix(tmp_path: Path) -> None:
    from multiid_bench.errors import MissingWeightsError
    from multiid_bench.judge.backends import QwenVLJudgeBackend

    with pytest.raises(MissingWeightsError, match="no config.json"):
        QwenVLJudgeBackend(model_dir=tmp_path).resolve()

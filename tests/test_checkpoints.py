"""Real checkpoints through the runner: Hugging Face folders written with ``save_pretrained`` (a
tiny mBART and a tiny LLaMA, each with its tokenizer) and timm-named safetensors (ResNet-50,
DINOv2 ViT at small widths) reach the methods through ``init=`` / ``llm_init=`` /
``resnet_init=`` / ``vit_init=``; the weights land (a parameter equals the file's tensor), the
pretrained tokenizer is used and recorded, training proceeds, and a checkpoint of the wrong
shape is an error naming the parameter, the file and both shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MBartConfig,
    MBartForConditionalGeneration,
    PreTrainedTokenizerFast,
)

from baselines.common.llm import LLAMA_TINY
from baselines.common.resnet import resnet50
from baselines.common.vit import VisionTransformer
from harness.data import load_dataset
from harness.runner import build_method, build_text_resources, method_class, run_method
from harness.text import train_tokenizer

SMALL = {"train_size": 8, "eval_size": 4, "measure_iters": 1, "progress": False}


def hf_tokenizer(lang: str) -> PreTrainedTokenizerFast:
    texts = [s.text for s in load_dataset("synthetic", "train", lang=lang, size=200)]
    tok = train_tokenizer(texts, vocab_size=400, lang=lang)
    return PreTrainedTokenizerFast(tokenizer_object=tok.tokenizer, bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


@pytest.fixture(scope="module")
def mbart_dir(tmp_path_factory) -> Path:
    """mBART at the tiny profile's size (HyperSign / HFA), with its tokenizer."""
    d = tmp_path_factory.mktemp("mbart")
    tok = hf_tokenizer("de")
    torch.manual_seed(123)
    config = MBartConfig(vocab_size=len(tok), d_model=128, encoder_layers=2, decoder_layers=2,
                         encoder_attention_heads=4, decoder_attention_heads=4,
                         encoder_ffn_dim=256, decoder_ffn_dim=256, max_position_embeddings=512,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, scale_embedding=True)
    MBartForConditionalGeneration(config).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    """LLaMA at the tiny profile's size (SignBind-LLM, English), with its tokenizer."""
    d = tmp_path_factory.mktemp("llama")
    tok = hf_tokenizer("en")
    torch.manual_seed(321)
    tiny = {k: v for k, v in LLAMA_TINY.items() if k != "rope_theta"}
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), **tiny)).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def hf_tensor(folder: Path, name: str) -> torch.Tensor:
    return load_file(str(folder / "model.safetensors"))[name]


def resources_for(key: str, overrides: dict, lang: str = "de"):
    train = load_dataset("synthetic", "train", lang=lang, size=64)
    return build_text_resources(method_class(key), train, lang, overrides=overrides)


@pytest.mark.slow
def test_mbart_folder_loads_with_its_tokenizer_and_trains(mbart_dir, tmp_path):
    overrides = {"init": str(mbart_dir)}
    res = resources_for("hypersign", overrides)
    hf = PreTrainedTokenizerFast.from_pretrained(mbart_dir)
    text = "morgen regen im norden"
    assert res.tokenizer.kind == "pretrained" and res.saved["tokenizer_from"] == str(mbart_dir)
    assert res.tokenizer.encode(text) == [hf.bos_token_id,
                                          *hf(text, add_special_tokens=False)["input_ids"],
                                          hf.eos_token_id]
    method = build_method("hypersign", "tiny", res, overrides)
    name = "model.encoder.layers.1.fc1.weight"
    assert torch.equal(method.mbart.state_dict()[name], hf_tensor(mbart_dir, name))
    assert torch.equal(method.mbart.get_input_embeddings().weight,
                       hf_tensor(mbart_dir, "model.shared.weight"))

    runs = run_method("hypersign", epochs=3, out=tmp_path, overrides=overrides, **SMALL)
    assert {r["split"] for r in runs} == {"dev", "test"}
    run = runs[0]
    assert run["config"]["text"]["tokenizer_from"] == str(mbart_dir)
    assert run["training"]["steps"] >= 3 and "bleu4" in run["accuracy"]


@pytest.mark.slow
def test_llama_folder_and_dinov2_vit_load_and_train(llama_dir, tmp_path):
    # SignBind-LLM's frame encoder: DINOv2 layout at the tiny width (32 px, patch 8, 64 wide)
    vit_file = tmp_path / "dinov2-tiny.safetensors"
    torch.manual_seed(5)
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2,
                            init_values=0.1)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(vit_file))
    overrides = {"llm_init": str(llama_dir), "frame_encoder_init": str(vit_file)}
    res = resources_for("signbind", overrides, lang="en")
    assert res.tokenizer.vocab_size == len(PreTrainedTokenizerFast.from_pretrained(llama_dir))
    method = build_method("signbind", "tiny", res, overrides)
    # LoRA wraps its targets in ``base_layer``; the weights underneath are the file's
    ours = method.llm.state_dict()
    for name in ("model.layers.1.mlp.down_proj.weight", "model.embed_tokens.weight"):
        key = name if name in ours else name.replace(".weight", ".base_layer.weight")
        assert torch.equal(ours[key], hf_tensor(llama_dir, name)), name
    assert torch.equal(method.frame_encoder.blocks[1].mlp.fc1.weight,
                       load_file(str(vit_file))["blocks.1.mlp.fc1.weight"])

    runs = run_method("signbind", epochs=4, out=tmp_path, overrides=overrides, **SMALL)
    assert runs[0]["config"]["text"]["tokenizer_from"] == str(llama_dir)
    assert runs[0]["training"]["steps"] >= 4


def test_timm_named_resnet50_and_dinov2_vit_load_and_train(tmp_path):
    res_file, vit_file = tmp_path / "resnet50.safetensors", tmp_path / "vit.safetensors"
    torch.manual_seed(7)
    save_file({k: v.contiguous() for k, v in resnet50(base_width=4).state_dict().items()},
              str(res_file))
    # DINOv2 layout at the HFA tiny width (64, 3 blocks, 2 heads, patch 14, 28 px grid)
    vit = VisionTransformer(img_size=28, patch_size=14, embed_dim=64, depth=3, num_heads=2,
                            init_values=1.0)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(vit_file))

    fuse = build_method("signfuse", "tiny", resources_for("signfuse", {}),
                        {"resnet_init": str(res_file)})
    assert torch.equal(fuse.visual.backbone.layer3[0].conv2.weight,
                       load_file(str(res_file))["layer3.0.conv2.weight"])
    hfa = build_method("hfa", "tiny", resources_for("hfa", {}), {"vit_init": str(vit_file)})
    assert torch.equal(hfa.vit.state_dict()["blocks.0.attn.proj.weight"]
                       if "blocks.0.attn.proj.weight" in hfa.vit.state_dict()
                       else hfa.vit.state_dict()["blocks.0.attn.proj.base_layer.weight"],
                       load_file(str(vit_file))["blocks.0.attn.proj.weight"])
    for method in (fuse, hfa):  # training proceeds from the loaded weights
        _one_training_step(method)


def _one_training_step(method) -> None:
    """Every stage of ``method`` takes one step on 2 samples: finite losses, gradients reach
    its trainable parameters."""
    from conftest import stage_state, synthetic_split

    from harness.evaluate import collate_for

    samples = synthetic_split("train", 2, lang="de")
    batch = collate_for(method, samples, tokenizer=method.tokenizer,
                        gloss_vocab=method.gloss_vocab, with_targets=True)
    method.train()
    for index, stage in enumerate(method.stages()):
        trainable = method.apply_stage(stage)
        loss = method.training_step(batch, stage_state(stage, stage_index=index))["loss"]
        assert torch.isfinite(loss), (method.key, stage.name)
        loss.backward()
        params = dict(method.named_parameters())
        assert any(params[n].grad is not None for n in trainable), (method.key, stage.name)
        method.zero_grad(set_to_none=True)


def test_shape_mismatch_names_parameter_file_and_shapes(tmp_path, mbart_dir):
    wide = tmp_path / "resnet50-wide.safetensors"
    save_file({k: v.contiguous() for k, v in resnet50(base_width=8).state_dict().items()},
              str(wide))
    with pytest.raises(ValueError) as err:
        build_method("signfuse", "tiny", resources_for("signfuse", {}),
                     {"resnet_init": str(wide)})
    message = str(err.value)
    assert str(wide) in message and "conv1.weight" in message
    assert "(8, 3, 7, 7)" in message and "(4, 3, 7, 7)" in message

    overrides = {"init": str(mbart_dir), "d_model": 64, "mbart_ffn": 256}
    with pytest.raises(ValueError, match=r"config\.json.*d_model 128 \(method: 64\)"):
        build_method("hypersign", "tiny", resources_for("hypersign", overrides), overrides)

"""Every model adapter's request building, checked against an injected fake pipeline.

For each adapter: the prompt template and image placeholders, the order of the references, boxes scaled to
the output size, how the seed reaches the pipeline, and which inputs are declared as taken from the GT.
"""
from __future__ import annotations

import numpy as np
import pytest

from multiid_bench.adapters import get_adapter
from multiid_bench.adapters.base import derive_seed
from tests.adapters.conftest import BOXES, COLOURS, GT_SIZE, colour_of

R, G, B, Y = COLOURS
SEED = derive_seed(7, "p2_case2")


def close(actual, expected) -> bool:
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=1e-9, atol=1e-9)
    return True


def run(name, case, fake_pipe, output="diffusers", seed=SEED, **settings):
    pipe = fake_pipe(output=output)
    result = get_adapter(name, pipe=pipe, **settings).generate(case, seed)
    return result, (pipe.calls[-1] if pipe.calls else None)


# ---------------------------------------------------------------------------------------- WithAnyone
def test_withanyone_square_crop_boxes_in_output_pixels(make_case, fake_pipe):
    case = make_case(2)
    res, kw = run("withanyone", case, fake_pipe)
    assert res.status == "ok" and res.image.size == (512, 512)
    assert [colour_of(im) for im in kw["reference_images"]] == [R, G]
    # Square crop of the 800x600 GT keeping both faces: side 600, centred on the union (x 100-600) -> x0 = 50.
    s = 512 / 600
    expected = [[(x1 - 50) * s, y1 * s, (x2 - 50) * s, y2 * s] for x1, y1, x2, y2 in BOXES[:2]]
    assert close(kw["boxes"], expected)
    assert kw["seed"] == SEED and kw["height"] == kw["width"] == 512
    assert (kw["num_inference_steps"], kw["guidance_scale"], kw["lambda_arc"], kw["lambda_sig"]) == (25, 4.0, 1.0, 0.0)
    assert kw["numerics"] == "default"
    assert kw["prompt"] == case.prompt == res.record.prompt
    assert res.record.gt_derived_inputs == ("boxes",) and res.record.reference_order == (0, 1)
    assert res.record.seed == SEED and res.record.seed_applied


def test_withanyone_stretch_mapping_and_missing_boxes(make_case, fake_pipe):
    res, kw = run("withanyone", make_case(2), fake_pipe, box_mapping="stretch", width=768, height=512,
                  numerics="official")
    assert kw["numerics"] == "official"  # -S numerics=official reaches the pipeline (issue 18)
    sx, sy = 768 / GT_SIZE[0], 512 / GT_SIZE[1]
    assert close(kw["boxes"], [[x1 * sx, y1 * sy, x2 * sx, y2 * sy] for x1, y1, x2, y2 in BOXES[:2]])
    res, kw = run("withanyone", make_case(2, boxes=False, case_id="p2_nobox"), fake_pipe)
    assert res.status == "not_applicable" and "box" in res.reason and kw is None


# ---------------------------------------------------------------------------------------- diffusers
def test_omnigen_placeholders_in_reference_order(make_case, fake_pipe):
    case = make_case(3)
    res, kw = run("omnigen", case, fake_pipe)
    assert kw["prompt"] == (f"{case.prompt} Person 1 is <img><|image_1|></img>. Person 2 is <img><|image_2|></img>. "
                            "Person 3 is <img><|image_3|></img>.")
    assert [colour_of(im) for im in kw["input_images"]] == [R, G, B]
    assert kw["generator"].initial_seed() == SEED
    assert (kw["num_inference_steps"], kw["guidance_scale"], kw["img_guidance_scale"]) == (50, 2.5, 1.6)
    assert res.record.gt_derived_inputs == () and res.record.prompt == kw["prompt"]
    _, kw1 = run("omnigen", make_case(1, case_id="p1_x"), fake_pipe)
    assert kw1["prompt"].endswith("The person is <img><|image_1|></img>.") and kw1["prompt"].count("<img>") == 1


def test_flux_kontext_single_and_stitched(make_case, fake_pipe):
    res, kw = run("flux-kontext", make_case(1, case_id="p1_k"), fake_pipe)
    assert colour_of(kw["image"]) == R and kw["generator"].initial_seed() == SEED
    assert (kw["guidance_scale"], kw["num_inference_steps"], kw["width"], kw["height"]) == (2.5, 28, 1024, 1024)
    res, kw = run("flux-kontext", make_case(2), fake_pipe, preset="upstream")
    canvas = kw["image"]
    assert canvas.height == 512 and canvas.getpixel((5, 256)) == R and canvas.getpixel((canvas.width - 5, 256)) == G
    assert "2 people side by side, from left to right" in kw["prompt"]
    assert res.record.extra["conditioning"] == "stitched-left-to-right"
    res, kw = run("flux-kontext", make_case(2), fake_pipe, multi_id="single-only")
    assert res.status == "not_applicable" and kw is None


def test_qwen_plus_image_list_and_2508_stitch(make_case, fake_pipe):
    case = make_case(2)
    res, kw = run("qwen-image-edit", case, fake_pipe, preset="upstream")
    assert [colour_of(im) for im in kw["image"]] == [R, G]
    assert kw["prompt"] == f"{case.prompt} Person 1 is the person in Picture 1. Person 2 is the person in Picture 2."
    assert (kw["true_cfg_scale"], kw["guidance_scale"], kw["num_inference_steps"], kw["negative_prompt"]) == (4.0, 1.0, 40, " ")
    assert res.record.extra["pipeline"] == "QwenImageEditPlusPipeline"
    adapter = get_adapter("qwen-image-edit", model_id="Qwen/Qwen-Image-Edit")
    assert adapter.pipeline_class_name() == "QwenImageEditPipeline"
    res, kw = run("qwen-image-edit", case, fake_pipe, preset="upstream", model_id="Qwen/Qwen-Image-Edit")
    assert kw["num_inference_steps"] == 50 and "guidance_scale" not in kw and not isinstance(kw["image"], list)
    res, _ = run("qwen-image-edit", make_case(4, case_id="p3_four"), fake_pipe, preset="upstream")
    assert "outside the range" in res.record.extra["note"]


# ---------------------------------------------------------------------------------------- API
def test_gpt4o_request_without_seed(make_case, fake_pipe):
    case = make_case(2)
    res, kw = run("gpt4o", case, fake_pipe)
    assert [colour_of(im) for im in kw["images"]] == [R, G]
    assert kw["prompt"] == (f"{case.prompt} Person 1 is the person in image 1. Person 2 is the person in image 2. "
                            "Keep every person's face and identity exactly.")
    assert (kw["model"], kw["size"], kw["quality"], kw["input_fidelity"]) == ("gpt-image-1", "1024x1024", "auto", None)
    assert "seed" not in kw and "generator" not in kw
    assert res.record.seed == SEED and res.record.seed_applied is False
    assert res.record.extra["model"] == "gpt-image-1" and res.record.extra["api"]["request_id"] == "req_1"


# ---------------------------------------------------------------------------------------- workers
def test_uno_and_umo(make_case, fake_pipe):
    case = make_case(2)
    res, kw = run("uno", case, fake_pipe, output="worker")
    assert [colour_of(im) for im in kw["ref_imgs"]] == [R, G] and kw["ref_size"] == 320
    assert kw["seed"] == SEED and kw["prompt"] == case.prompt and kw["pe"] == "d"
    assert (kw["width"], kw["height"], kw["num_steps"], kw["guidance"]) == (512, 512, 25, 4.0)
    assert res.record.extra["worker"] == {"size": [512, 512]}
    _, kw = run("uno", make_case(1, case_id="p1_u"), fake_pipe, output="worker")
    assert kw["ref_size"] == 512
    res, kw = run("umo", case, fake_pipe, output="worker")
    assert (kw["width"], kw["height"]) == (768, 768)
    umo = get_adapter("umo")
    assert umo.worker_settings()["umo_ckpt"] == "bytedance-research/UMO/UMO_UNO.safetensors"
    assert "python" not in umo.worker_settings()


def test_uso_single_content_reference(make_case, fake_pipe):
    res, kw = run("uso", make_case(2), fake_pipe, output="worker")
    assert res.status == "not_applicable" and "single-identity" in res.reason and kw is None
    res, kw = run("uso", make_case(1, case_id="p1_s"), fake_pipe, output="worker")
    assert [colour_of(im) for im in kw["ref_imgs"]] == [R] and kw["style_imgs"] == [] and kw["ref_size"] == 512
    assert (kw["width"], kw["height"]) == (1024, 1024) and kw["seed"] == SEED


def test_dreamo_id_tasks(make_case, fake_pipe):
    res, kw = run("dreamo", make_case(2), fake_pipe, output="worker")
    assert kw["ref_tasks"] == ["id", "id"] and [colour_of(im) for im in kw["ref_images"]] == [R, G]
    assert (kw["num_inference_steps"], kw["guidance_scale"], kw["first_step_guidance_scale"]) == (12, 4.5, 4.5)
    assert kw["seed"] == SEED and kw["true_cfg_scale"] == 1.0


def test_omnigen2_wording_and_align_res(make_case, fake_pipe):
    case = make_case(2)
    res, kw = run("omnigen2", case, fake_pipe, output="worker")
    assert kw["prompt"] == f"{case.prompt} Person 1 is the person in image 1. Person 2 is the person in image 2."
    assert kw["align_res"] is True and kw["cfg_range"] == [0.0, 1.0]
    assert (kw["text_guidance_scale"], kw["image_guidance_scale"], kw["num_inference_steps"]) == (5.0, 2.0, 50)
    assert [colour_of(im) for im in kw["input_images"]] == [R, G] and kw["seed"] == SEED
    assert get_adapter("umo-omnigen2").worker_settings()["umo_lora"].endswith("UMO_OmniGen2.safetensors")


def test_uniportrait_scales_and_optional_gt_pose(make_case, fake_pipe):
    res, kw = run("uniportrait", make_case(2), fake_pipe, output="worker")
    assert (kw["face_structure_scale"], kw["lora_scale"], kw["multi_id_lora_scale"]) == (0.3, 0.0, 1.0)
    assert kw["pose_image"] is None and kw["controlnet_conditioning_scale"] == 0.0
    assert res.record.gt_derived_inputs == ()
    res, kw = run("uniportrait", make_case(1, case_id="p1_up"), fake_pipe, output="worker", pose="gt")
    assert (kw["face_structure_scale"], kw["lora_scale"], kw["multi_id_lora_scale"]) == (0.1, 1.0, 0.0)
    assert kw["pose_image"].size == (512, 512) and kw["controlnet_conditioning_scale"] == 1.0
    assert res.record.gt_derived_inputs == ("pose", "gt_image")


def test_id_patch_left_to_right_and_gt_pose(make_case, fake_pipe):
    res, kw = run("id-patch", make_case(2), fake_pipe, output="worker")
    # Reference 1's GT box is left of reference 0's: ID-Patch gets them left to right.
    assert res.record.reference_order == (1, 0)
    assert [colour_of(im) for im in kw["ref_images"]] == [G, R]
    assert kw["pose_image"].size == (1024, 768) and res.record.requested_size == (1024, 768)
    s = 1024 / 800
    assert close(kw["face_boxes"], [[v * s for v in BOXES[1]], [v * s for v in BOXES[0]]])
    assert res.record.gt_derived_inputs == ("boxes", "pose", "gt_image")
    assert (kw["num_inference_steps"], kw["guidance_scale"], kw["id_injection_ratio"]) == (50, 5.5, 0.8)
    res, _ = run("id-patch", make_case(2, gt=False, case_id="p2_nogt"), fake_pipe, output="worker")
    assert res.status == "not_applicable" and "GT" in res.reason


def test_infiniteyou_seed_zero_and_control(make_case, fake_pipe):
    res, kw = run("infiniteyou", make_case(1, case_id="p1_i"), fake_pipe, output="worker", seed=0)
    assert kw["seed"] == 1 and res.record.seed == 0 and res.record.extra["seed_sent"] == 1
    assert kw["control_image"] is None and res.record.gt_derived_inputs == ()
    assert (kw["width"], kw["height"], kw["num_steps"], kw["guidance_scale"]) == (864, 1152, 30, 3.5)
    res, kw = run("infiniteyou", make_case(1, case_id="p1_i"), fake_pipe, output="worker", control="gt")
    assert kw["seed"] == SEED and kw["control_image"].size == (864, 1152)
    assert res.record.gt_derived_inputs == ("keypoints", "gt_image")
    res, _ = run("infiniteyou", make_case(3), fake_pipe, output="worker")
    assert res.status == "not_applicable"


def test_pulid_and_instantid_single_id(make_case, fake_pipe):
    res, kw = run("pulid-flux", make_case(1, case_id="p1_p"), fake_pipe, output="worker")
    assert colour_of(kw["id_image"]) == R and kw["seed"] == SEED
    assert (kw["width"], kw["height"], kw["num_steps"], kw["start_step"], kw["guidance"]) == (896, 1152, 28, 0, 4.0)
    assert run("pulid-flux", make_case(2), fake_pipe, output="worker")[0].status == "not_applicable"
    res, kw = run("instantid", make_case(1, case_id="p1_p"), fake_pipe, output="worker")
    assert colour_of(kw["face_image"]) == R and kw["pose_image"] is None and res.record.gt_derived_inputs == ()
    assert (kw["num_inference_steps"], kw["guidance_scale"], kw["ip_adapter_scale"]) == (30, 5.0, 0.8)
    res, kw = run("instantid", make_case(1, case_id="p1_p"), fake_pipe, output="worker", kps_source="gt")
    # resize_img keeps the GT's 4:3: short side 1024 -> 1365x1024, long side 1280 -> 1280x960 (multiples of 64)
    assert kw["pose_image"].size == (1280, 960) and res.record.gt_derived_inputs == ("keypoints", "gt_image")
    assert run("instantid", make_case(2), fake_pipe, output="worker")[0].status == "not_applicable"


# ---------------------------------------------------------------------------------------- failure contract
@pytest.mark.parametrize("name,output", [("omnigen", "diffusers"), ("uno", "worker"), ("gpt4o", "api")])
def test_upstream_error_is_a_failed_case(make_case, fake_pipe, name, output):
    pipe = fake_pipe(output=output, error=RuntimeError("CUDA out of memory"))
    res = get_adapter(name, pipe=pipe).generate(make_case(2), SEED)
    assert res.status == "failed" and res.image is None
    assert "RuntimeError: CUDA out of memory" in res.reason
    assert res.record.prompt  # what was sent is still recorded


def test_unknown_setting_and_bad_value_raise(make_case, fake_pipe):
    from multiid_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown setting.*num_step"):
        get_adapter("omnigen", num_step=3)
    with pytest.raises(ConfigError, match="box_mapping"):
        get_adapter("withanyone", pipe=fake_pipe(), box_mapping="zoom").generate(make_case(2), 1)


# ---------------------------------------------------------------------------------------- real signatures
@pytest.mark.slow  # imports diffusers pipelines and the reference model (~20-30 s cold on 2 busy cores)
@pytest.mark.parametrize("name,settings", [("omnigen", {}), ("flux-kontext", {}), ("qwen-image-edit", {}),
                                           ("qwen-image-edit", {"model_id": "Qwen/Qwen-Image-Edit"}),
                                           ("withanyone", {})])
def test_call_kwargs_exist_in_the_real_pipeline_signature(make_case, fake_pipe, name, settings):
    """The fake pipeline accepts anything; the real ``__call__`` must accept every keyword we send."""
    import inspect

    adapter = get_adapter(name, pipe=fake_pipe(), **settings)
    if name == "withanyone":
        from multiid_bench.reference_model.pipeline import WithAnyonePipeline as cls
    else:
        import diffusers

        cls = getattr(diffusers, adapter.pipeline_class_name())
    params = set(inspect.signature(cls.__call__).parameters)
    sent = set(adapter.build_request(make_case(2), 1).call_kwargs) | {"generator" if name != "withanyone" else "seed"}
    assert sent <= params, f"{cls.__name__} does not accept {sorted(sent - params)}"

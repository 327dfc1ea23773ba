"""Face pipeline: detect once per image, align per template, embed in batches.

Importing this package is light (no torch, cv2 or onnxruntime); each loader imports what it needs::

    from multiid_bench.faces import load_detector, load_face_model, align_faces, get_profile
    det = load_detector("mtcnn")
    model = load_face_model("dlib")
    faces = det.detect([rgb])[0]
    emb = model.embed(align_faces(rgb, faces, model.card.template, model.card.crop_size))
"""
from __future__ import annotations

from multiid_bench.faces.align import TEMPLATES, align_faces, template_points
from multiid_bench.faces.detect import DETECTORS, detector_weight_ids, load_detector
from multiid_bench.faces.models import FACE_MODELS, face_model_weight_ids, load_face_model
from multiid_bench.faces.profiles import PROFILES, Profile, ProfileEntry, get_profile
from multiid_bench.faces.types import Detector, Face, FaceModel, FaceModelCard

__all__ = [
    "DETECTORS",
    "FACE_MODELS",
    "PROFILES",
    "TEMPLATES",
    "Detector",
    "Face",
    "FaceModel",
    "FaceModelCard",
    "Profile",
    "ProfileEntry",
    "align_faces",
    "detector_weight_ids",
    "face_model_weight_ids",
    "get_profile",
    "load_detector",
    "load_face_model",
    "template_points",
]

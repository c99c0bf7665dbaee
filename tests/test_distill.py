"""Knowledge distillation: a local run, a saved model or a model on the (local) Hub teaches a new run; the teacher
is recorded exactly and named on the card; teachers that do not fit the data are refused before anything runs."""

import hashlib
import json

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub import ModelCard

from tinyhub import cards, modeling, trainer
from tinyhub.trainer.distill import Teacher, TeacherError, distillation_loss, soft_targets
from conftest import FAST, hub_client


def _train(tmp_path, mnist_dir, name, *overrides):
    cfg = trainer.load_config([*FAST, "model=gap2k", "training.epochs=1", "data.subset=600", f"data.dir={mnist_dir}",
                               f"run.dir={tmp_path / name}", *overrides])
    return trainer.train(cfg)


def test_soft_targets_average_an_ensemble_and_the_loss_is_t2_kl():
    torch.manual_seed(0)
    a, b = (modeling.create_model("gap2k").eval() for _ in range(2))
    x = torch.rand(4, 1, 28, 28)
    one = soft_targets([Teacher(a, {})], x, 2.0)
    both = soft_targets([Teacher(a, {}), Teacher(b, {})], x, 2.0)
    with torch.no_grad():  # each teacher normalises the [0, 1] batch with its own statistics
        pb = F.softmax(b((x - b.mean[0]) / b.std[0]) / 2.0, dim=1)
    assert torch.allclose(both, (one + pb) / 2, atol=1e-6) and not both.is_inference()
    logits = torch.randn(4, 10, requires_grad=True)
    loss = distillation_loss(logits, one, 2.0)
    manual = (one * (one.log() - F.log_softmax(logits / 2.0, dim=1))).sum(1).mean() * 4.0
    assert torch.allclose(loss, manual, atol=1e-6)
    loss.backward()  # soft targets are constants: the gradient flows to the student only
    assert logits.grad is not None
    assert distillation_loss(one.log() * 2.0, one, 2.0).abs() < 1e-5  # a student equal to its teacher: no loss


def test_distilling_from_a_local_run_records_it_and_the_card_names_it(tiny_runs, mnist_dir, tmp_path):
    teacher = tiny_runs[0]
    run = _train(tmp_path, mnist_dir, "student", f"training.distill.teacher={teacher}",
                 "training.distill.temperature=3.0", "training.distill.weight=0.7")
    results = json.loads((run / "results.json").read_text())
    record = results["distillation"]
    assert (record["temperature"], record["weight"]) == (3.0, 0.7)
    (t,) = record["teachers"]
    weights = (teacher / "model" / "model.safetensors").read_bytes()
    assert t["kind"] == "run" and t["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert t["architecture"] == "opt6k" and t["parameters"] == 6_132
    assert t["test_accuracy"] == json.loads((teacher / "results.json").read_text())["final"]["test_accuracy"]
    card = ModelCard(cards.build_card(run, repo_id="me/student").content)  # round-trips through ModelCard
    assert "knowledge-distillation" in card.data.to_dict()["tags"]
    row = card.text.split("| Distilled from | ")[1].split(" |\n")[0]
    assert "`opt6k`, 6,132 parameters" in row and t["weights_sha256"][:16] in row
    assert "### Distillation" in card.text and "0.7 × T² ×" in card.text and "T = 3.0" in card.text
    command = card.text.split("### Reproduce\n\n```bash\n")[1].split("\n```")[0]
    assert "training.distill.teacher=/path/to/teacher" in command and str(teacher) not in command


def test_an_ensemble_of_teachers_is_recorded_whole(tiny_runs, mnist_dir, tmp_path):
    run = _train(tmp_path, mnist_dir, "ensemble", f"training.distill.teacher=[{tiny_runs[0]},{tiny_runs[1]}]")
    teachers = json.loads((run / "results.json").read_text())["distillation"]["teachers"]
    assert [t["path"] for t in teachers] == [str((r / "model").resolve()) for r in tiny_runs]
    assert "an ensemble of 2 teachers" in cards.build_card(run, repo_id="me/student").content


@pytest.mark.parametrize("make_teacher, message", [
    (lambda tmp: tmp / "missing", "does not exist"),
    (lambda tmp: modeling.create_model("gap2k", num_classes=3).save_pretrained(tmp / "t3") or tmp / "t3",
     "predicts 3 classes, but the data has 10"),
    (lambda tmp: modeling.create_model("gap2k", input_size=32).save_pretrained(tmp / "t32") or tmp / "t32",
     "takes 1x32x32 images, the data is 1x28x28"),
    (lambda tmp: modeling.create_model("gap2k", id2label={str(i): "abcdefghij"[i] for i in range(10)})
     .save_pretrained(tmp / "named") or tmp / "named", "the classes must be the same, in the same order"),
])
def test_a_teacher_that_does_not_fit_is_refused_before_training(mnist_dir, tmp_path, make_teacher, message):
    teacher = make_teacher(tmp_path)
    with pytest.raises(TeacherError, match=message):
        _train(tmp_path, mnist_dir, "refused", f"training.distill.teacher={teacher}")
    assert not (tmp_path / "refused").exists()  # nothing was written


@pytest.mark.e2e
def test_a_teacher_published_on_the_hub_teaches_anyone(hub, tiny_runs, mnist_dir, tmp_path):
    pushed = hub_client(hub, tmp_path, "push", str(tiny_runs[1]), "--repo-id", "tester/teacher", "--tag", "v1")
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    student = tmp_path / "student"
    r = hub_client(hub, tmp_path, "train", *FAST, "model=gap2k", "training.epochs=1", "data.subset=600",
                   f"run.dir={student}", "training.distill.teacher=tester/teacher@v1", "--data-dir", str(mnist_dir))
    assert r.returncode == 0, r.stderr[-3000:]
    (t,) = json.loads((student / "results.json").read_text())["distillation"]["teachers"]
    assert (t["kind"], t["repo_id"], t["revision"], t["commit"]) == ("hub", "tester/teacher", "v1",
                                                                     hub.head("tester/teacher", "main"))
    assert t["test_accuracy"] == json.loads((tiny_runs[1] / "results.json").read_text())["final"]["test_accuracy"]
    card = cards.build_card(student, repo_id="me/student").content
    assert f"[tester/teacher](https://huggingface.co/tester/teacher/tree/{t['commit']})" in card
    assert f"training.distill.teacher=tester/teacher@{t['commit']}" in card

"""The original AIsaac's DreamBooth tutorial (nbs/Tutorials/30_DreamBooth.ipynb in Isaac-Flath/AIsaac), its cells as
the author wrote them, on tiny random stand-ins for what it downloads.

The stand-ins: a folder laid out as the Stable Diffusion checkpoint is (unet, text_encoder, vae, scheduler, tokenizer,
model_index.json) holding a small UNet2DConditionModel, CLIPTextModel and AutoencoderKL built from configs, with a
CLIP tokenizer over a vocabulary of single letters written here; 40x32 random JPEGs instead of the photos and the
generated class images; 32 pixels instead of 512 (`SIZE`); 2 epochs instead of 50; the pipeline is saved but no
images are generated from it (that cell needs a GPU). Everything else is the tutorial's code, on the CPU (its
Accelerator's fp16 has no effect there). Nothing reaches the network (HF_HUB_OFFLINE).
"""
import json
import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before the Hugging Face libraries read it
diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("fastcore")
pytest.importorskip("torchvision")

SIZE = 32  # the tutorial's 512
LETTERS = "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def fresh_accelerate_state():
    """The tutorial makes its own Accelerator (fp16); other tests' Accelerators start from a clean state again."""
    from accelerate.state import AcceleratorState, GradientState
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def tiny_stable_diffusion(root):
    """A Stable Diffusion folder with random tiny models: what `from_pretrained(pretrained_model, subfolder=...)` reads."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    torch.manual_seed(0)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{c: 2 + i for i, c in enumerate(LETTERS)},
             **{c + "</w>": 2 + len(LETTERS) + i for i, c in enumerate(LETTERS)}}  # no merges: one token per letter
    words = root / "words"
    words.mkdir(parents=True)
    (words / "vocab.json").write_text(json.dumps(vocab))
    (words / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(words / "vocab.json"), str(words / "merges.txt"), model_max_length=24)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                                num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=24,
                                                bos_token_id=0, eos_token_id=1, pad_token_id=1))
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, layers_per_block=1,
                        norm_num_groups=8, sample_size=SIZE)
    unet = UNet2DConditionModel(sample_size=SIZE // 2, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=8, attention_head_dim=2)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012)
    StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                            safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(root / "sd")
    return root / "sd"


def random_photos(folder, n, seed):
    """`n` random 40x32 JPEGs (landscape, so RandomCrop has somewhere to move)."""
    from PIL import Image
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        pixels = torch.randint(0, 256, (SIZE, SIZE + 8, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{seed}_{i}.jpg")


class LastValidationBatch:
    """Keeps the last validation batch, its predictions and loss, for the check by hand."""

    order = 100

    def after_batch(self, trainer):
        if not trainer.training: self.batch, self.preds, self.loss = list(trainer.batch), trainer.preds, trainer.loss


def test_the_dreambooth_tutorial_trains_and_saves(tmp_path, offline, fresh_accelerate_state, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the tutorial writes to relative paths
    tiny = tiny_stable_diffusion(tmp_path / "hub")
    for folder, n, seed in (("dreambooth/class/train", 4, 1), ("dreambooth/class/valid", 2, 2),
                            ("dreambooth/cropped/train", 4, 3), ("dreambooth/cropped/valid", 2, 4)):
        random_photos(tmp_path / folder, n, seed)

    # ---- the tutorial's cells, as written (the stand-ins: pretrained_model, SIZE for 512, 2 epochs) ----
    from AIsaac.all import (AccelerateCB, BatchAugmentationCB, DataLoaders, DeviceCB, MetricsCB, OneCycleSchedulerCB,
                            ProgressCB, Trainer, UnNormalize, get_images, to_cpu)
    import fastcore.all as fc
    import torch
    from torch import nn
    import torch.nn.functional as F
    from torch.utils.data import Dataset
    from transformers import AutoTokenizer, PretrainedConfig, CLIPTextModel  # noqa: F401
    from accelerate import Accelerator
    from diffusers import AutoencoderKL, DDPMScheduler, DiffusionPipeline, UNet2DConditionModel, StableDiffusionPipeline
    from diffusers.optimization import get_scheduler  # noqa: F401
    from functools import partial

    import torchvision  # noqa: F401
    from torchvision import transforms
    import torchvision.transforms.functional as TF

    from PIL import Image
    import itertools, math, hashlib, random  # noqa: F401,E401
    from pathlib import Path

    def decode(tokenizer, tokens, start_after='<|startoftext|>', end_at='<|endoftext|>'):
        _decoded = ds.tokenizer.decode(tokens)  # noqa: F821 (the tutorial's own slip; never called)
        return _decoded[len(start_after):_decoded.find(end_at)].strip()

    denorm = UnNormalize([.5], [.5])

    pretrained_model = str(tiny)  # "CompVis/stable-diffusion-v1-4"
    cls_img_dir = Path("dreambooth/class")
    img_dir = Path("dreambooth/cropped")

    def transform(image, xmean=0.5, xstd=0.5): return (TF.to_tensor(TF.resize(image, SIZE)) - xmean) / xstd

    class DBDataset(Dataset):
        def __init__(self, class_imgs, class_prompt, main_imgs, main_prompt):
            fc.store_attr('class_imgs,class_prompt,main_imgs,main_prompt')
        def __len__(self): return len(self.main_imgs)
        def __getitem__(self, idx):
            cls_img, main_img = map(Image.open, [self.class_imgs[idx], self.main_imgs[idx]])
            cls_img, main_img = map(transform, [cls_img, main_img])
            return (torch.stack([main_img, cls_img]),
                    (self.main_prompt, self.class_prompt))

    trn_ds = DBDataset(get_images(cls_img_dir/'train'), "a photo of dog", get_images(img_dir/'train'), "a photo of sks dog")
    val_ds = DBDataset(get_images(cls_img_dir/'valid')[:10], "a photo of dog", get_images(img_dir/'valid'), "a photo of sks dog")

    from torch.utils.data import DataLoader
    dls = DataLoaders(*map(partial(DataLoader, batch_size=None), [trn_ds, val_ds]))

    img_tfms = transforms.Compose([transforms.RandomCrop(SIZE),
                                   transforms.Normalize([0.5], [0.5])])

    tokenizer = AutoTokenizer.from_pretrained(pretrained_model,
                                              subfolder="tokenizer",
                                              revision=None, use_fast=False,)
    def lbl_tfms(yb, tokenizer=tokenizer):
        out = tokenizer(yb,
                        truncation=True, padding="max_length",
                        max_length=tokenizer.model_max_length,
                        return_tensors="pt",)
        return out.input_ids

    class DreamBoothModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.unet = UNet2DConditionModel.from_pretrained(pretrained_model,
                                                             subfolder="unet",
                                                             revision=None)
            self.text_encoder = CLIPTextModel.from_pretrained(pretrained_model,
                                                              subfolder="text_encoder",
                                                              revision=None)

        def forward(self, x):
            encoder_hidden_states = self.text_encoder(x[1])[0]
            return self.unet(x[5], x[4], encoder_hidden_states).sample.float()

    class DreamBoothTrainCB(AccelerateCB):
        def __init__(self, mixed_precision="fp16", class_image_weight=0.5):
            self.class_image_weight = class_image_weight
            self.acc = Accelerator(mixed_precision=mixed_precision)

        def before_fit(self, trainer):
            '''Wraps model, opt, data in accelerate'''
            trainer.model, trainer.opt, trainer.dls.train, trainer.dls.valid = self.acc.prepare(
                     trainer.model, trainer.opt, trainer.dls.train, trainer.dls.valid)

            trainer.noise_scheduler = DDPMScheduler.from_pretrained(pretrained_model, subfolder="scheduler")
            trainer.vae = AutoencoderKL.from_pretrained(pretrained_model, subfolder="vae", revision=None)
            trainer.vae.requires_grad_(False)
            trainer.vae.to(self.acc.device, dtype=torch.float16)

        def before_batch(self, trainer):
            '''Calculates latents, noise, timesteps, noisy_latents'''
            vae, scaling_factor = trainer.vae, trainer.vae.config.scaling_factor
            trainer.batch.append(vae.encode(trainer.batch[0].to(dtype=torch.float16)).latent_dist.sample()*scaling_factor)
            trainer.batch[0] = to_cpu(trainer.batch[0])
            trainer.batch.append(torch.randn_like(trainer.batch[2]).float())
            num_ts = trainer.noise_scheduler.config.num_train_timesteps
            trainer.batch.append(torch.randint(0, num_ts, (trainer.batch[2].shape[0],), device=trainer.batch[2].device))
            trainer.batch.append(trainer.noise_scheduler.add_noise(trainer.batch[2], trainer.batch[3], trainer.batch[4]))

        def predict(self, trainer): trainer.preds = trainer.model(trainer.batch)

        def get_loss(self, trainer):
            '''Calculates loss for instance and class images'''
            model_pred, model_pred_prior = torch.chunk(trainer.preds, 2, dim=0)
            target, target_prior = torch.chunk(trainer.batch[3], 2, dim=0)
            loss = trainer.loss_func(model_pred, target, reduction="mean")
            prior_loss = trainer.loss_func(model_pred_prior, target_prior, reduction="mean")
            trainer.loss = ((1 - self.class_image_weight) * loss) + (self.class_image_weight * prior_loss)

        def backward(self, trainer):
            '''backward pass + clip_grad'''
            self.acc.backward(trainer.loss)
            if self.acc.sync_gradients: self.acc.clip_grad_norm_(trainer.model.parameters(), 1.)

        def zero_grad(self, trainer): trainer.opt.zero_grad(set_to_none=True)

    trainer = Trainer(dls, fc.bind(F.mse_loss, reduction="mean"), torch.optim.AdamW,
                      DreamBoothModel(),
                      callbacks=[DreamBoothTrainCB(class_image_weight=.25),
                                 OneCycleSchedulerCB(),
                                 BatchAugmentationCB((img_tfms, lbl_tfms)),
                                 DeviceCB(),
                                 MetricsCB(),
                                 ProgressCB()]
                      )
    model = trainer.model
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}

    rows = trainer.summarize_callbacks()
    last = LastValidationBatch()
    trainer.fit(2, lr=5e-6, callbacks=[last])

    output_dir = "dreambooth/out"
    uw_model = trainer.DreamBoothTrainCB.acc.unwrap_model(trainer.model)
    pipeline = DiffusionPipeline.from_pretrained(
        pretrained_model,
        unet=uw_model.unet,
        text_encoder=uw_model.text_encoder,
        revision=None,
    )
    pipeline.save_pretrained(output_dir)
    # ---- end of the tutorial's cells ----

    printed = capsys.readouterr().out
    losses = trainer.MetricsCB.losses_epoch
    print(printed)
    print("epoch losses:", losses)

    # The step is the subclass alone: its own phases, AccelerateCB's inherited step; its before_batch after the
    # batch transforms (which run after DeviceCB), as in the original.
    owners = {(event, name) for event, name, _ in rows}
    for event in ("before_fit", "before_batch", "predict", "get_loss", "backward", "step", "zero_grad"):
        assert (event, "DreamBoothTrainCB") in owners, event
    assert not {name for event, name, _ in rows if event in ("predict", "get_loss", "backward", "step", "zero_grad")} \
        - {"DreamBoothTrainCB"}
    before_batch = [name for event, name, _ in rows if event == "before_batch"]
    assert before_batch.index("DeviceCB") < before_batch.index("BatchAugmentationCB") < \
        before_batch.index("DreamBoothTrainCB")

    # Trained: every epoch's losses finite, the weights of both trained models changed, the VAE's not trained.
    assert len(losses) == 2 and all(math.isfinite(e[k]) for e in losses for k in ("train", "valid"))
    after = uw_model.state_dict()
    assert uw_model is model
    for part in ("unet.", "text_encoder."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)), part
    assert all(not p.requires_grad for p in trainer.vae.parameters())

    # Validation batches went through both transforms, as in the original: the prompts tokenized, the images cropped
    # square and normalised a second time; the batch stayed a list the step appended latents, noise, timesteps and
    # noisy latents to.
    batch = last.batch
    assert len(batch) == 6 and batch[0].shape == (2, 3, SIZE, SIZE) and batch[0].min() < -1
    ids = tokenizer(["a photo of sks dog", "a photo of dog"], padding="max_length", max_length=24,
                    return_tensors="pt").input_ids
    assert torch.equal(batch[1], ids)
    # The validation loss by hand, with the final weights (no training step after the last validation batch).
    with torch.no_grad():
        pred = model.unet(batch[5], batch[4], model.text_encoder(batch[1])[0]).sample.float()
    by_hand = .75 * F.mse_loss(pred[:1], batch[3][:1]) + .25 * F.mse_loss(pred[1:], batch[3][1:])
    torch.testing.assert_close(last.loss, by_hand)
    torch.testing.assert_close(last.preds, pred)

    # Saved: a pipeline folder whose unet and text encoder are the trained ones.
    out = Path(output_dir)
    assert (out / "model_index.json").exists()
    assert list((out / "unet").glob("diffusion_pytorch_model*")) and list((out / "text_encoder").glob("model*"))
    saved = UNet2DConditionModel.from_pretrained(output_dir, subfolder="unet")
    assert all(torch.equal(v, after["unet." + k]) for k, v in saved.state_dict().items())
    assert torch.equal(denorm(batch[0][:1].clone()), batch[0][:1] * .5 + .5)

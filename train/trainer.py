"""The training loop (docs/model.md, section 'Training recipe'): AdamW, autocast on CUDA,
clipping, validation every epoch, the best checkpoint by M_J (`RUN_DIR/best/`, `save_pretrained`
layout) and the last training state (`RUN_DIR/last.pt`), from which `--resume` continues exactly
where the run stopped.

Run directory: `config.yaml` (the resolved config), `last.pt`, `best/`, `metrics.jsonl` (one JSON
record a line: `event` train | val | stop), `tb/` (TensorBoard scalars). A run that starts removes
the temporary files a killed run left in it; a resumed run drops the records logged after the
step it resumes from. On resume the optimisation fields (lr, weight_decay, grad_clip, epochs, ...)
may change and take effect at once; those the state depends on (train.run_state.RESUME_FIXED)
may not.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import threading
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from selm.build import build_selm
from selm.losses import selm_loss
from selm.weights.checkpoint import save_pretrained
from selm.weights.resolve import load_pretrained
from train.batch import autocast, to_device
from train.config import TrainConfig, save_config
from train.data import build_dataset, write_vggish_cache
from train.data.datasets import seeded_loader, vggish_cache_path
from train.distributed import (
    EpochSeeded,
    ShardedShuffleSampler,
    all_gather_objects,
    all_reduce,
    barrier,
    broadcast_object,
    cleanup,
    init_distributed,
    resolve_device,
    wrap_ddp,
)
from train.run_state import (
    RunLog,
    apply_optimizer_fields,
    capture_rng,
    check_resumable,
    divergence_advice,
    load_state,
    remove_run_temporaries,
    restore_rng,
    save_state,
    seed_all,
)
from train.scoring import best_metric_name, evaluate_model


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without saving the broken weights."""


class Trainer:
    """One training run. `fit()` trains until `config.epochs`, `max_steps` optimiser steps, the
    time limit (minutes of this process) or SIGTERM/SIGINT; every stop saves `last.pt` first."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        run_dir: str | Path,
        resume: bool = False,
        max_steps: int | None = None,
        time_limit_min: float | None = None,
    ) -> None:
        if config.data_root is None:
            raise ValueError(
                "data_root is not set: add `data_root:` to the config or --set data_root=DIR"
            )
        self.cfg, self.run_dir = config, Path(run_dir)
        self.max_steps, self.time_limit_min = max_steps, time_limit_min
        self.dist = init_distributed(use_cuda=resolve_device(config.device).type == "cuda")
        self.device = resolve_device(config.device, self.dist.local_rank)
        self.model_cfg = config.model_config()

        seed_all(config.seed)  # the same initial weights on every process
        self.weights = config.weight_sources()
        model = build_selm(self.model_cfg, **dataclasses.asdict(self.weights))
        if config.init_from:
            model.load_state_dict(load_pretrained(config.init_from).state_dict())
        self._fill_vggish_cache(model)
        self.model = model.to(self.device)
        self.ddp = wrap_ddp(self.model, self.dist, self.device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.lr, weight_decay=config.weight_decay
        )
        use_scaler = config.amp == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        seed_all(config.seed + self.dist.rank)  # dropout / Gumbel noise differ between processes

        self.train_set = self._dataset(config.train_split, augment=config.augment)
        self.sampler = ShardedShuffleSampler(
            len(self.train_set),
            seed=config.seed,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            pairs=True,
        )
        self.loader = self._loader(
            EpochSeeded(self.train_set, config.seed), config.batch_size, self.sampler
        )
        self.val_loader = None
        if self.dist.is_main and config.val_split:
            val_set = self._dataset(config.val_split)
            self.val_loader = self._loader(val_set, config.eval_batch_size, None)
        self.metric_name = best_metric_name(config.setting)

        self.epoch = self.step_in_epoch = self.global_step = 0
        self.best_value, self.best_epoch = -math.inf, -1
        if resume:
            self._load(self.run_dir / "last.pt")
        if self.dist.is_main:  # on resume too: the config that runs now (epochs may have grown)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_run_temporaries(self.run_dir)
            save_config(config, self.run_dir / "config.yaml")
        self.log = RunLog(
            self.run_dir,
            enabled=self.dist.is_main,
            tensorboard=config.tensorboard,
            resume_step=self.global_step if resume else None,
        )
        if self.log.rolled_back:
            print(
                f"resume: dropped {self.log.rolled_back} record(s) of metrics.jsonl logged after "
                f"step {self.global_step} (the state resumed from); those steps run again",
                flush=True,
            )
        self._stop_reason: str | None = None

    # --- data ---
    def _dataset(self, split: str, augment: bool = False, cached: bool = True):
        """The split as the model reads it; VGGish embeddings from the cache when it is used."""
        c, options = self.cfg, self.cfg.data_options.kwargs()
        if cached and self._uses_cache():
            options.update(audio="vggish", vggish_cache=c.vggish_cache)
        return build_dataset(
            c.setting, c.data_root, split, config=self.model_cfg, augment=augment, **options
        )

    def _uses_cache(self) -> bool:
        return bool(self.cfg.vggish_cache) and self.model_cfg.freeze_vggish

    def _vggish_without_weights(self) -> bool:
        m = self.model_cfg
        return (
            m.freeze_vggish
            and m.vggish == "official"
            and not self.weights.vggish_weights
            and not self.cfg.init_from
        )

    def _fill_vggish_cache(self, model) -> None:
        """Refuse to train on a frozen random VGGish; write the cached VGGish embeddings of the
        train and val splits once (main process) when a cache is used."""
        missing = []
        if self._uses_cache() and self.dist.is_main:
            cache = Path(self.cfg.vggish_cache)
            for split in (self.cfg.train_split, self.cfg.val_split):
                source = self._dataset(split, cached=False)
                if not all(vggish_cache_path(cache, r).is_file() for r in source.records):
                    missing.append((split, source))
        to_write = broadcast_object(bool(missing), self.dist)  # every process raises, or none
        if self._vggish_without_weights() and (to_write or not self._uses_cache()):
            raise ValueError(
                "the official VGGish is frozen but has no weights (model.vggish_weights is null): "
                "it would feed random features. Set model.vggish_weights=vggish-10086976.pth "
                "(with vggish_cache=DIR the embeddings are computed once and reused)"
            )
        for split, source in missing:
            print(f"writing VGGish embeddings of {split} to {self.cfg.vggish_cache}", flush=True)
            write_vggish_cache(source, model.encoder.vggish.eval(), self.cfg.vggish_cache)
        barrier(self.dist)

    def _loader(self, dataset, batch_size: int, sampler) -> DataLoader:
        pin = self.device.type == "cuda"
        return seeded_loader(dataset, batch_size, sampler, self.cfg.num_workers, pin, self.cfg.seed)

    # --- state ---
    def _state(self) -> dict:
        rng = all_gather_objects(capture_rng(), self.dist)  # every process's generators
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "world_size": self.dist.world_size,
            "rng": rng,
            "config": self.cfg.to_dict(),
        }

    def _save(self) -> None:
        state = self._state()  # collective: every process takes part
        if self.dist.is_main:
            save_state(state, self.run_dir / "last.pt")
        barrier(self.dist)

    def _load(self, path: Path) -> None:
        state = load_state(path)  # on the CPU: load_state_dict copies to the device
        check_resumable(state.get("config") or {}, self.cfg.to_dict(), path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        apply_optimizer_fields(self.optimizer, self.cfg)
        self.scaler.load_state_dict(state["scaler"])
        for key in ("epoch", "step_in_epoch", "global_step", "best_value", "best_epoch"):
            setattr(self, key, state[key])
        if state["world_size"] == self.dist.world_size:
            restore_rng(state["rng"][self.dist.rank])
        else:  # a different process count cannot replay the same noise; say so and go on
            print(
                f"resume: the run had {state['world_size']} processes, now "
                f"{self.dist.world_size}; random generators are re-seeded",
                flush=True,
            )
            seed_all(self.cfg.seed + 7919 * self.global_step + self.dist.rank)

    # --- stepping ---
    def _set_backbone_frozen(self, epoch: int) -> None:
        if self.cfg.freeze_backbone_epochs and not self.model_cfg.freeze_backbone:
            # as released: only the gradients stop; BatchNorm keeps training mode
            self.model.encoder.backbone.requires_grad_(epoch >= self.cfg.freeze_backbone_epochs)

    def train_step(self, batch: dict) -> dict[str, float]:
        """One optimiser step on one batch; returns the loss parts (floats)."""
        if isinstance(batch["masks"], list):
            raise ValueError(
                f"a {self.cfg.setting} training batch holds labels of different sizes "
                f"({sorted({tuple(m.shape[-2:]) for m in batch['masks']})}); set "
                "data_options.mask_size (the release trains AVSS on labels resized to 224)"
            )
        b = to_device(batch, self.device)
        with autocast(self.device, self.cfg.amp):
            out = self.ddp(b["frames"], b["audio"], b["frame_mask"])
        out = dataclasses.replace(  # the loss in float32 whatever autocast chose
            out, logits=out.logits.float(), hit_maps=[h.float() for h in out.hit_maps]
        )
        loss, parts = selm_loss(out, b["masks"], b["has_gt"], self.model_cfg)
        bad = all_reduce(torch.tensor([float(not math.isfinite(parts["loss"]))]), self.dist, "max")
        if bad.item():
            raise TrainingDiverged(
                f"the loss became {parts['loss']} at epoch {self.epoch + 1}, step "
                f"{self.global_step + 1} (parts {parts}); nothing was saved after it. "
                + divergence_advice(self.run_dir, self.cfg.lr)
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
            parts["grad_norm"] = float(norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return parts

    def _should_stop(self, started: float) -> bool:
        """Whether any process wants to stop (steps, time, signal); all processes agree."""
        if self.max_steps is not None and self.global_step >= self.max_steps:
            self._stop_reason = self._stop_reason or "max_steps"
        limit = self.time_limit_min
        if limit is not None and time.monotonic() - started > 60 * limit:
            self._stop_reason = self._stop_reason or "time_limit"
        flag = torch.tensor([float(self._stop_reason is not None)])
        if all_reduce(flag, self.dist, "max").item():
            self._stop_reason = self._stop_reason or "another process stopped"
            return True
        return False

    # --- the loop ---
    def _on_signal(self, signum, frame) -> None:
        """SIGTERM / first Ctrl-C: stop after this step and save; a second one: stop now."""
        if self._stop_reason == "signal":
            raise KeyboardInterrupt
        self._stop_reason = "signal"
        print(
            "\nstopping after this step (saving last.pt); press Ctrl-C again to abort", flush=True
        )

    def fit(self) -> dict:
        """Train; returns a summary (best metric and epoch, global step, why it stopped)."""
        started = time.monotonic()
        previous = {}
        if threading.current_thread() is threading.main_thread():  # signals need the main thread
            previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
            for s in previous:
                signal.signal(s, self._on_signal)
        try:
            return self._fit(started)
        except TrainingDiverged as err:
            self.log.record(
                {"event": "stop", "reason": "nan", "step": self.global_step, "message": str(err)}
            )
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.log.close()
            cleanup(self.dist)

    def _fit(self, started: float) -> dict:
        cfg = self.cfg
        steps_per_epoch = math.ceil(self.sampler.per_rank / cfg.batch_size)
        self.log.record(
            {
                "event": "start",
                "step": self.global_step,
                "epoch": self.epoch,
                "world_size": self.dist.world_size,
                "steps_per_epoch": steps_per_epoch,
            }
        )
        while self.epoch < cfg.epochs and self._stop_reason is None:
            self._set_backbone_frozen(self.epoch)
            self.sampler.set_epoch(self.epoch, skip=self.step_in_epoch * cfg.batch_size)
            self.ddp.train()
            bar = self.log.progress(steps_per_epoch, self.step_in_epoch, self.epoch, cfg)
            stopped = False
            for batch in self.loader:
                parts = self.train_step(batch)
                self.step_in_epoch += 1
                self.global_step += 1
                self.log.train_step(
                    parts,
                    self.global_step,
                    self.epoch,
                    cfg.log_every,
                    self.dist,
                    flush=self.step_in_epoch == steps_per_epoch,
                )
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.4f}")
                if self._should_stop(started) and self.step_in_epoch < steps_per_epoch:
                    stopped = True
                    break
            bar.close()
            if stopped:  # in the middle of an epoch: save where we are and leave
                self._save()
                break
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            if self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs:
                self._validate()
            self._save()
            self._should_stop(started)
        reason = "done" if self.epoch >= cfg.epochs else self._stop_reason or "done"
        best = self.best_value if math.isfinite(self.best_value) else None  # None: not validated
        summary = {
            "event": "stop",
            "reason": reason,
            "epoch": self.epoch,
            "step": self.global_step,
            "best_" + self.metric_name: best,
            "best_epoch": self.best_epoch,
        }
        self.log.record(summary)
        return summary

    def _validate(self) -> None:
        if self.dist.is_main and self.val_loader is not None:
            metrics = evaluate_model(
                self.model,
                self.val_loader,
                setting=self.cfg.setting,
                device=self.device,
                amp=self.cfg.amp,
            )
            value = metrics[self.metric_name]
            improved = value > self.best_value
            if improved:
                self.best_value, self.best_epoch = value, self.epoch
                save_pretrained(
                    self.model,
                    self.run_dir / "best",
                    training={
                        "setting": self.cfg.setting,
                        "epoch": self.epoch,
                        "step": self.global_step,
                        self.metric_name: value,
                    },
                )
            self.log.validation(metrics, self.global_step, self.epoch, improved)
        barrier(self.dist)
        self.best_value, self.best_epoch = (  # every process agrees on the best so far
            all_gather_objects((self.best_value, self.best_epoch), self.dist)[0]
        )

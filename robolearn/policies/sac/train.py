"""Off-policy learner state and the jitted update `update(state, batch) -> (state, metrics)`.

One update is what one environment step buys at update-to-data ratio `utd`: `utd` critic steps,
each on its own minibatch of `batch_size` transitions (inside one `lax.scan`), then one actor and
one temperature step on the last minibatch (WSRL's shape: 4 critic minibatches of 256 and one
actor step per environment step). The actor is the BC Gaussian actor: a sampled action is
mean + max(std, sac.std_floor) * noise, clipped to [-1, 1] where the environment and the critics
see it; its entropy term uses the Gaussian's log-density of the unclipped sample.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from robolearn.core.augment import random_shift
from robolearn.core.normalize import NormStats
from robolearn.core.optim import make_optimizer
from robolearn.policies.bc.config import BCConfig
from robolearn.policies.bc.model import GaussianActor
from robolearn.policies.ppo.losses import gaussian_log_prob
from robolearn.policies.ppo.train import effective_log_std
from robolearn.policies.sac.config import SACConfig
from robolearn.policies.sac.losses import bc_terms, cql_penalty, soft_update, td_target
from robolearn.policies.sac.model import EnsembleCritic


class Transitions(NamedTuple):
    """Transitions (s, a, r, s'), any leading shape [...]: image / next_image uint8 [..., H, W, 3],
    proprio / next_proprio float32 [..., P] (raw units), action float32 [..., A] (as executed,
    in [-1, 1]), reward float32 [...], terminal float32 [...] (1: s' ends the task, no bootstrap;
    a time limit is not terminal), mc_return float32 [...] (discounted return from s to the end
    of its episode, for Cal-QL)."""

    image: jax.Array
    proprio: jax.Array
    action: jax.Array
    reward: jax.Array
    next_image: jax.Array
    next_proprio: jax.Array
    terminal: jax.Array
    mc_return: jax.Array


class SACState(struct.PyTreeNode):
    """Everything the learner changes, one pytree (the checkpoint): `params` is the actor, named
    as in the BC TrainState so the checkpoint loads as a policy."""

    step: jax.Array
    params: nnx.State
    critic: nnx.State
    target_critic: nnx.State
    log_alpha: jax.Array
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState
    rng: jax.Array


def critic_model_config(cfg: SACConfig, actor: BCConfig):
    """The critics' ModelConfig with the actor's input and action sizes (critic_encoder actor:
    the actor's whole encoder config, the critic's MLP widths)."""
    m = actor.model
    if cfg.critic_encoder == "actor":
        return dataclasses.replace(m, hidden=cfg.critic.hidden)
    return dataclasses.replace(
        cfg.critic, image_size=m.image_size, proprio_dim=m.proprio_dim, action_dim=m.action_dim
    )


def make_optimizers(cfg: SACConfig) -> tuple[optax.GradientTransformation, ...]:
    """(actor, critic, temperature) optimizers."""
    return (
        make_optimizer(cfg.actor_optim),
        make_optimizer(cfg.critic_optim),
        make_optimizer(cfg.temperature_optim),
    )


def init_sac_state(
    cfg: SACConfig, actor: BCConfig, rng: jax.Array, actor_params: nnx.State | None = None
) -> tuple[tuple[nnx.GraphDef, nnx.GraphDef], SACState]:
    """((actor graphdef, critic graphdef), state) with the actor from `actor_params` (a BC or
    refined policy's weights; None: a fresh actor) and fresh critics (targets = online)."""
    actor_rng, critic_rng, rng = jax.random.split(rng, 3)
    actor_graph, fresh = nnx.split(GaussianActor(actor.model, nnx.Rngs(params=actor_rng)))
    params = fresh if actor_params is None else actor_params
    critic_model = EnsembleCritic(
        critic_model_config(cfg, actor), cfg.ensemble, nnx.Rngs(critic_rng)
    )
    if cfg.critic_encoder == "actor":  # the warm-started actor's encoder, frozen in the critics
        nnx.update(critic_model.encoder, nnx.state(nnx.merge(actor_graph, params).encoder))
    critic_graph, critic = nnx.split(critic_model)
    actor_tx, critic_tx, alpha_tx = make_optimizers(cfg)
    log_alpha = jnp.log(jnp.asarray(cfg.init_temperature, jnp.float32))
    state = SACState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        critic=critic,
        target_critic=jax.tree.map(jnp.copy, critic),
        log_alpha=log_alpha,
        actor_opt=actor_tx.init(params),
        critic_opt=critic_tx.init(critic),
        alpha_opt=alpha_tx.init(log_alpha),
        rng=rng,
    )
    return (actor_graph, critic_graph), state


def _sample(rng, mean, log_std, n: int | None = None):
    """Reparameterized Gaussian samples and their log-densities: [B, A] -> ([B, A], [B]), or
    with n: ([B, n, A], [B, n])."""
    shape = mean.shape if n is None else (mean.shape[0], n, mean.shape[1])
    if n is not None:
        mean, log_std = mean[:, None], log_std[:, None]
    action = mean + jnp.exp(log_std) * jax.random.normal(rng, shape)
    return action, gaussian_log_prob(mean, log_std, action)


def make_update(cfg: SACConfig, graphs: tuple, stats: NormStats, actor: bool = True):
    """The jitted update of the module doc: update(state, batch: Transitions [utd, B, ...]) ->
    (state, metrics). Metrics (means over the update): critic_loss, td_loss, q (the data actions'
    Q), target, cql (the regularizer, 0 when off), actor_loss, q_policy, entropy (-log pi of the
    actor's samples), alpha, bc_nll and bc_mse (the data actions' NLL under the actor, their
    squared distance to its mean).
    actor=False: the critic steps alone (the actor and alpha unchanged; no actor metrics), to fit
    fresh critics to a warm-started actor before it follows them."""
    actor_graph, critic_graph = graphs
    actor_tx, critic_tx, alpha_tx = make_optimizers(cfg)
    n = cfg.cql_actions

    def floored(actor, image, proprio):
        """The actor's mean and log-std at its exploration floor (sac.std_floor)."""
        mean, log_std = actor(image, proprio)
        return mean, effective_log_std(log_std, cfg.std_floor)

    def views(rng, batch: Transitions):
        """Augmented frames and normalized proprio of s and s'."""
        a, b = jax.random.split(rng)
        image, next_image = batch.image, batch.next_image
        if cfg.shift_pad:
            image = random_shift(a, image, cfg.shift_pad)
            next_image = random_shift(b, next_image, cfg.shift_pad)
        return (
            image,
            stats.normalize(batch.proprio),
            next_image,
            stats.normalize(batch.next_proprio),
        )

    def critic_step(carry, batch: Transitions):
        state = carry
        rng, aug, next_rng, subset, cql_rng = jax.random.split(state.rng, 5)
        image, proprio, next_image, next_proprio = views(aug, batch)
        actor = nnx.merge(actor_graph, state.params)
        alpha = jnp.exp(state.log_alpha)
        mean_next, log_std_next = floored(actor, next_image, next_proprio)
        a_next, logp_next = _sample(next_rng, mean_next, log_std_next)
        target_critic = nnx.merge(critic_graph, state.target_critic)
        q_next = target_critic(next_image, next_proprio, jnp.clip(a_next, -1.0, 1.0))
        entropy = -alpha * logp_next if cfg.backup_entropy else 0.0
        target = td_target(
            subset, q_next, batch.reward, batch.terminal, cfg.gamma, cfg.target_subset, entropy
        )
        if cfg.mc_bound:  # MCAC: no lower than what the episode really collected from here
            target = jnp.maximum(target, batch.mc_return)
        target = jax.lax.stop_gradient(target)
        if cfg.cql_alpha > 0:  # the drawn actions do not depend on the critic's weights
            r_rand, r_pi, r_next = jax.random.split(cql_rng, 3)
            b, a_dim = batch.action.shape
            random_actions = jax.random.uniform(r_rand, (b, n, a_dim), minval=-1.0, maxval=1.0)
            mean, log_std = floored(actor, image, proprio)
            pi_now, logp_now = _sample(r_pi, mean, log_std, n)
            pi_next, logp_next_n = _sample(r_next, mean_next, log_std_next, n)
            drawn = jnp.concatenate([pi_now, pi_next], axis=1)
            drawn_logp = jax.lax.stop_gradient(jnp.concatenate([logp_now, logp_next_n], axis=1))
            drawn = jax.lax.stop_gradient(jnp.clip(drawn, -1.0, 1.0))

        def loss_fn(params):
            critic = nnx.merge(critic_graph, params)
            features = critic.features(image, proprio)
            if cfg.critic_encoder == "actor":  # frozen: only the heads learn
                features = jax.lax.stop_gradient(features)
            q = critic.heads(features, batch.action)  # [E, B]
            td = jnp.mean((q - target[None]) ** 2)
            cql = jnp.zeros(())
            if cfg.cql_alpha > 0:

                def many(actions):  # [B, k, A] -> [E, B, k]
                    k = actions.shape[1]
                    rep = jnp.repeat(features, k, axis=0)
                    q_k = critic.heads(rep, actions.reshape(b * k, a_dim))
                    return q_k.reshape(q_k.shape[0], b, k)

                cql = jnp.mean(
                    cql_penalty(
                        q, many(random_actions), many(drawn), drawn_logp, a_dim,
                        batch.mc_return if cfg.calql else None,
                    )
                )  # fmt: skip
            return td + cfg.cql_alpha * cql, {"td_loss": td, "cql": cql, "q": jnp.mean(q)}

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.critic)
        updates, critic_opt = critic_tx.update(grads, state.critic_opt, state.critic)
        critic = optax.apply_updates(state.critic, updates)
        state = state.replace(
            critic=critic,
            critic_opt=critic_opt,
            target_critic=soft_update(state.target_critic, critic, cfg.tau),
            rng=rng,
        )
        return state, {"critic_loss": loss, "target": jnp.mean(target), **aux}

    def actor_step(state: SACState, batch: Transitions, target_entropy):
        rng, aug, act_rng = jax.random.split(state.rng, 3)
        image, proprio, _, _ = views(aug, batch)
        critic = nnx.merge(critic_graph, state.critic)
        alpha = jnp.exp(state.log_alpha)

        def ensemble_q(actions):  # [B, A] -> [B]: the members' mean or minimum
            q_all = critic(image, proprio, jnp.clip(actions, -1.0, 1.0))  # [E, B]
            return jnp.min(q_all, axis=0) if cfg.actor_q == "min" else jnp.mean(q_all, axis=0)

        def loss_fn(params):
            mean, log_std = floored(nnx.merge(actor_graph, params), image, proprio)
            action, logp = _sample(act_rng, mean, log_std)
            bc = bc_terms(mean, log_std, batch.action)
            if cfg.actor_loss in ("awac", "awr"):  # the data actions, weighted by advantage
                q = jax.lax.stop_gradient(ensemble_q(action))  # V(s), one sample of pi
                # awac: Q of the data action; awr: what its episode collected after it
                taken = batch.mc_return if cfg.actor_loss == "awr" else ensemble_q(batch.action)
                advantage = jax.lax.stop_gradient(taken) - q
                weight = jnp.minimum(jnp.exp(advantage / cfg.awac_temperature), cfg.awac_max_weight)
                log_prob = gaussian_log_prob(mean, log_std, batch.action)
                loss = -jnp.mean(weight * log_prob)
                extra = {"awac_weight": jnp.mean(weight), "advantage": jnp.mean(advantage)}
            else:
                q = ensemble_q(action)
                loss, extra = jnp.mean(alpha * logp - q), {}
            loss = loss + cfg.bc_coef * bc[cfg.bc_loss]
            aux = {"q_policy": jnp.mean(q), "entropy": -jnp.mean(logp)}
            return loss, aux | extra | {"bc_nll": bc["nll"], "bc_mse": bc["mse"]}

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, actor_opt = actor_tx.update(grads, state.actor_opt, state.params)
        params = optax.apply_updates(state.params, updates)

        def alpha_loss(log_alpha):
            return log_alpha * jax.lax.stop_gradient(aux["entropy"] - target_entropy)

        alpha_grad = jax.grad(alpha_loss)(state.log_alpha)
        alpha_updates, alpha_opt = alpha_tx.update(alpha_grad, state.alpha_opt, state.log_alpha)
        log_alpha = optax.apply_updates(state.log_alpha, alpha_updates)
        state = state.replace(
            params=params, actor_opt=actor_opt, log_alpha=log_alpha, alpha_opt=alpha_opt, rng=rng
        )
        return state, {"actor_loss": loss, "alpha": jnp.exp(log_alpha), **aux}

    @jax.jit
    def jitted(state: SACState, batch: Transitions, target_entropy):
        state, critic_metrics = jax.lax.scan(critic_step, state, batch)
        actor_metrics = {}
        if actor:
            last = jax.tree.map(lambda x: x[-1], batch)
            state, actor_metrics = actor_step(state, last, target_entropy)
        metrics = {k: jnp.mean(v) for k, v in critic_metrics.items()} | actor_metrics
        return state.replace(step=state.step + 1), metrics

    def update(state: SACState, batch: Transitions, target_entropy: float | None = None):
        """target_entropy: alpha's target for this update (default: the config's); a traced
        value, so a caller may fix it late without a recompile."""
        if target_entropy is None:
            target_entropy = cfg.entropy_target(batch.action.shape[-1])
        return jitted(state, batch, jnp.float32(target_entropy))

    return update

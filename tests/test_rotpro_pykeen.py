"""Rot-Pro inside PyKEEN (optional extra): scores equal the library's, the penalty is collected, a pipeline trains it."""
import pytest
import torch

pykeen = pytest.importorskip('pykeen')


def test_pykeen_rotpro_matches_library_and_runs_in_a_pipeline():
    from importlib.resources import files
    from pykeen.triples import TriplesFactory
    from pykeen.pipeline import pipeline
    from reprbook.rotpro.pykeen import RotProModel
    from reprbook.rotpro.model import KGEModel
    from reprbook.rotpro.data import load_kg_dir
    kg = load_kg_dir(files('reprbook')/'samples'/'rotpro'/'toy')
    e2i, r2i = {n: i for i, n in enumerate(kg.entities)}, {n: i for i, n in enumerate(kg.relations)}
    tf = TriplesFactory(kg.train, entity_to_id=e2i, relation_to_id=r2i)
    lib = KGEModel('rotpro', kg.n_entities, kg.n_relations, 6, 6.0, penalty_alpha=0.25, gamma_m=1e-6)
    with torch.no_grad():
        lib.projection_embedding_a.uniform_(-0.2, 1.2); lib.projection_embedding_b.uniform_(0, 1); lib.projection_phase.uniform_(-2, 2)
    pk = RotProModel(triples_factory=tf, embedding_dim=6, gamma=6.0, penalty_alpha=0.25, gamma_m=1e-6, random_seed=0)
    with torch.no_grad():
        pk.entity_representations[0]._embeddings.weight.copy_(lib.entity_embedding)
        for i, name in enumerate(('relation_embedding', 'projection_embedding_a', 'projection_embedding_b', 'projection_phase')):
            pk.relation_representations[i]._embeddings.weight.copy_(getattr(lib, name))
        assert torch.allclose(pk.score_hrt(kg.test).squeeze(1), lib(kg.test)[0] - 6.0, atol=1e-5)
        assert torch.allclose(pk.collect_regularization_term(), lib.penalty(), atol=1e-6)
    test = TriplesFactory(kg.test, entity_to_id=e2i, relation_to_id=r2i)
    res = pipeline(training=tf, testing=test, model=RotProModel, model_kwargs=dict(embedding_dim=6, gamma=6.0),
                   loss='NSSALoss', loss_kwargs=dict(margin=6.0, adversarial_temperature=1.0), optimizer='Adam',
                   optimizer_kwargs=dict(lr=1e-2), training_kwargs=dict(num_epochs=2, batch_size=64, use_tqdm=False),
                   evaluation_kwargs=dict(use_tqdm=False), random_seed=0, device='cpu')
    assert 0 < res.metric_results.get_metric('both.realistic.inverse_harmonic_mean_rank') <= 1

from AIsaac.all import OneBatchCB


class Count:
    def before_fit(self, trainer): self.batches = []
    def after_batch(self, trainer): self.batches.append((trainer.training, trainer.batch_num))


def test_one_training_batch_then_stop(make_trainer, make_model):
    model = make_model()
    before = [p.clone() for p in model.parameters()]
    count = Count()
    t = make_trainer([OneBatchCB(), count], model=model)
    t.fit(3)
    assert count.batches == [(True, 0)]
    assert any(not (p == q).all() for p, q in zip(model.parameters(), before))  # the one batch did step


def test_one_validation_batch_without_training(make_trainer):
    count = Count()
    make_trainer([OneBatchCB(), count]).fit(2, train=False)
    assert count.batches == [(False, 0)]

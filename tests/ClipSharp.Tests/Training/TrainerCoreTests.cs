using ClipSharp.Modeling;
using ClipSharp.Tests.Modeling;
using ClipSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Training;

/// <summary>The trainer's loss path against the reference, gradient accumulation, optimiser groups and hygiene.</summary>
public class TrainerCoreTests
{
    [Theory]
    [InlineData("vit_small")]
    [InlineData("rn_small")]
    public void TrainerLossAndGradientsMatchGolden(string name)
    {
        using var model = ModelParityTests.LoadGoldenModel(name);
        var io = GoldenTensors.Load(Golden.Path("models", name + ".io.safetensors"));
        using var trainer = new ClipTrainer(model, TinyModels.Options());
        using var scope = NewDisposeScope();
        double loss = trainer.LossAndBackward(io["pixel_values"], io["input_ids"].narrow(0, 0, 4));
        double expected = io["loss"].item<float>();
        Assert.True(Math.Abs(loss - expected) / Math.Abs(expected) <= 1e-4, $"loss {loss} vs {expected}");
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var key in io.Keys.Where(k => k.StartsWith("grad.")))
            TensorAssert.Relative(parameters[key[5..]].grad!, io[key], 1e-4, key);
        foreach (var t in io.Values) t.Dispose();
    }

    [Theory]
    [InlineData(LossKind.Infonce)]
    [InlineData(LossKind.Sigmoid)]
    public void MicroBatchesWithCachedFeaturesGiveTheLargeBatchGradient(LossKind kind)
    {
        using var model = TinyModels.Create(1);
        var (pixels, ids) = TinyModels.RandomBatch(8, 3);
        using var trainer = new ClipTrainer(model, TinyModels.Options(loss: kind));
        var named = trainer.NamedParameters().ToList();

        double full = trainer.LossAndBackward(pixels, ids, microBatchSize: 8);
        var reference = named.ToDictionary(p => p.Name, p => p.Parameter.grad!.clone());
        trainer.Optimizer.ZeroGrad();
        foreach (int m in new[] { 4, 2 })
        {
            double acc = trainer.LossAndBackward(pixels, ids, microBatchSize: m);
            Assert.True(Math.Abs(full - acc) <= 1e-6 * Math.Abs(full), $"loss {acc} vs {full}");
            foreach (var (n, p) in named)
                TensorAssert.Relative(p.grad!, reference[n], 1e-5, $"{n} (micro-batch {m})");
            trainer.Optimizer.ZeroGrad();
        }
        foreach (var t in reference.Values) t.Dispose();
    }

    [Fact]
    public void NoWeightDecayOnParametersWithFewerThanTwoDimensions()
    {
        using var model = TinyModels.Create();
        using var trainer = new ClipTrainer(model, TinyModels.Options());
        var undecayed = trainer.Optimizer.UndecayedNames.ToHashSet();
        Assert.Contains("logit_scale", undecayed);
        Assert.Contains("ln_final.weight", undecayed);
        Assert.Contains("visual.class_embedding", undecayed);
        Assert.Contains("transformer.resblocks.0.attn.in_proj_bias", undecayed);
        var decayed = trainer.Optimizer.DecayedNames.ToHashSet();
        Assert.Contains("token_embedding.weight", decayed);
        Assert.Contains("visual.conv1.weight", decayed);
        Assert.Contains("text_projection", decayed);
        Assert.Empty(decayed.Intersect(undecayed));
        Assert.Equal(model.parameters().Count(), decayed.Count + undecayed.Count);
    }

    [Fact]
    public void ViTAndResNetGetTheirAdamDefaults()
    {
        Assert.Equal(new AdamWSettings(0.9, 0.98, 1e-6, 0.2), AdamWSettings.For(true, 0.2));
        Assert.Equal(new AdamWSettings(0.9, 0.999, 1e-8, 0.1), AdamWSettings.For(false, 0.1));
    }

    [Fact]
    public void ScheduleWarmsUpLinearlyThenDecaysByCosine()
    {
        var s = new CosineSchedule(1.0, 10, 110, 0.0);
        Assert.Equal(0.1, s.At(0), 12);
        Assert.Equal(1.0, s.At(9), 12);
        Assert.Equal(1.0, s.At(10), 12);
        Assert.Equal(0.5, s.At(60), 12);
        Assert.Equal(0.0, s.At(110), 12);
        for (int i = 11; i < 110; i++) Assert.True(s.At(i) <= s.At(i - 1));
    }

    [Fact]
    public void LogitScaleIsClampedToLn100AfterEachStep()
    {
        using var model = TinyModels.Create();
        using (Scalar nearCap = (Math.Log(100) - 1e-4).ToScalar())
        using (torch.no_grad()) model.LogitScale.fill_(nearCap);
        using var trainer = new ClipTrainer(model, TinyModels.Options(lr: 1.0));
        var (pixels, ids) = TinyModels.RandomBatch(4, 1);
        var r = trainer.Step(pixels, ids);
        Assert.True(model.LogitScale.item<float>() <= (float)Math.Log(100));
        Assert.True(r.LogitScale <= 100.0001);
    }

    [Fact]
    public void TwentyTrainingStepsLeakNoTensors()
    {
        using var model = TinyModels.Create();
        using var trainer = new ClipTrainer(model, TinyModels.Options(micro: 2));
        var (pixels, ids) = TinyModels.RandomBatch(4, 1);
        trainer.Step(pixels, ids); // warm-up: optimiser moments are created on the first step
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 20; i++) trainer.Step(pixels, ids);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void FreezingLocksTheImageTowerAndLowerTextLayers()
    {
        using var model = TinyModels.Create(config: TinyModels.Micro with { TransformerLayers = 2 });
        var frozen = Freezing.Apply(model, new FreezeSection { LockImage = true, FreezeTextLayers = 1 }).ToHashSet();
        Assert.Contains("visual.conv1.weight", frozen);
        Assert.Contains("visual.proj", frozen);
        Assert.Contains("token_embedding.weight", frozen);
        Assert.Contains("transformer.resblocks.0.mlp.c_fc.weight", frozen);
        Assert.DoesNotContain("transformer.resblocks.1.mlp.c_fc.weight", frozen);
        Assert.DoesNotContain("text_projection", frozen);
        Assert.DoesNotContain("logit_scale", frozen);
        using var trainer = new ClipTrainer(model, TinyModels.Options());
        var before = model.Visual.parameters().Select(p => p.clone()).ToList();
        var (pixels, ids) = TinyModels.RandomBatch(4, 2);
        trainer.Step(pixels, ids);
        var names = model.Visual.named_parameters().Select(p => p.name).ToList();
        Assert.All(model.Visual.parameters().Zip(before, names), t => Assert.True((t.First - t.Second).abs().max().item<float>() == 0, t.Third));
    }
}

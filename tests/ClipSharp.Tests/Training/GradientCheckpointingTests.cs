using ClipSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Training;

/// <summary>Recomputing transformer blocks in backward must not change any gradient.</summary>
public class GradientCheckpointingTests
{
    // Two blocks per tower, so a recomputed block feeds its input gradient into another recomputed block.
    private static readonly ClipSharp.Modeling.ClipConfig TwoLayers = TinyModels.Micro with { VisionLayers = [2], TransformerLayers = 2 };

    [Theory]
    [InlineData(null, 0)]
    [InlineData(4, 0)]   // feature-caching micro-batches
    [InlineData(null, 1)] // block above frozen layers: its input needs no gradient, its parameters do
    public void CheckpointedGradientsEqualPlainGradients(int? micro, int frozenTextLayers)
    {
        using var model = TinyModels.Create(5, TwoLayers);
        if (frozenTextLayers > 0) Freezing.Apply(model, new FreezeSection { FreezeTextLayers = frozenTextLayers });
        var (pixels, ids) = TinyModels.RandomBatch(8, 4, TwoLayers);
        using var trainer = new ClipTrainer(model, TinyModels.Options(micro: micro));
        var named = trainer.NamedParameters().Where(p => p.Parameter.requires_grad).ToList();

        double plain = trainer.LossAndBackward(pixels, ids);
        var reference = named.ToDictionary(p => p.Name, p => p.Parameter.grad!.clone());
        trainer.Optimizer.ZeroGrad();

        GradientCheckpointing.Enable(model);
        Assert.True(GradientCheckpointing.IsEnabled(model));
        int calls = 0;
        model.TextTransformer.BlockRunner = (b, x) => { calls++; return GradientCheckpointing.Run(b, x); };
        double checkpointed = trainer.LossAndBackward(pixels, ids);
        Assert.True(calls >= 2, $"text blocks went through the checkpointed runner {calls} times");
        Assert.Equal(plain, checkpointed, 6);
        foreach (var (n, p) in named)
        {
            Assert.True(p.grad is not null, $"{n}: no gradient with checkpointing");
            TensorAssert.Relative(p.grad!, reference[n], 1e-5, n);
        }
        trainer.Optimizer.ZeroGrad();
        GradientCheckpointing.Disable(model);
        foreach (var t in reference.Values) t.Dispose();
    }

    [Fact]
    public void CheckpointedStepsLeakNoTensors()
    {
        using var model = TinyModels.Create(1, TwoLayers);
        GradientCheckpointing.Enable(model);
        using var trainer = new ClipTrainer(model, TinyModels.Options());
        var (pixels, ids) = TinyModels.RandomBatch(4, 1, TwoLayers);
        trainer.Step(pixels, ids);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 5; i++) trainer.Step(pixels, ids);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}

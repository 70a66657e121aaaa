using ClipSharp.Modeling;
using ClipSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Training;

/// <summary>Small models and batches that make training tests run in seconds.</summary>
internal static class TinyModels
{
    /// <summary>ViT patch 8 on 32 px, width 32, one layer per tower, a 1000-token vocabulary.</summary>
    public static ClipConfig Micro { get; } = ModelPresets.Get("cpu-vit-micro") with { VocabSize = 1000 };

    public static ClipModel Create(int seed = 0, ClipConfig? config = null)
    {
        torch.manual_seed(seed);
        return new ClipModel(config ?? Micro);
    }

    /// <summary>Random pixels and token rows that end in a unique maximal id (the end-of-text position).</summary>
    public static (Tensor Pixels, Tensor Ids) RandomBatch(int n, int seed, ClipConfig? config = null)
    {
        var c = config ?? Micro;
        var g = new torch.Generator((ulong)seed);
        var pixels = torch.randn([n, 3, c.ImageResolution, c.ImageResolution], generator: g);
        var ids = torch.randint(1, c.VocabSize - 2, [n, c.ContextLength], generator: g);
        for (int i = 0; i < n; i++)
        {
            int len = 3 + (i * 7 + seed) % 10;
            ids[i, len] = torch.tensor(c.VocabSize - 1L);
            ids[i, TensorIndex.Slice(len + 1)] = torch.tensor(0L);
        }
        return (pixels, ids);
    }

    public static TrainerOptions Options(double lr = 1e-3, int steps = 100, int warmup = 0, int? micro = null, LossKind loss = LossKind.Infonce) => new()
    {
        AdamW = AdamWSettings.For(true, 0.2),
        Schedule = new CosineSchedule(lr, warmup, steps),
        MicroBatchSize = micro,
        Loss = loss,
    };
}

using ClipSharp.Modeling;
using ClipSharp.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Benchmarks;

/// <summary>The workloads ClipSharp can measure on its own (random weights, synthetic inputs).</summary>
public sealed class BuiltInWorkloadProvider : IBenchmarkWorkloadProvider
{
    /// <summary>The small CLIP of the training benchmark: ViT patch 8 on 64 px, width 256, 6 layers, 4 heads; text 256/6/4; embed 256.</summary>
    public static ClipConfig SmallClip { get; } = new(256, 64, [6], 256, 8, 77, 49408, 256, 4, 6) { VisionHeadsOverride = 4 };

    /// <inheritdoc />
    public IBenchmarkWorkload? TryCreate(BenchmarkRow row, BenchmarkOptions options)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(options);
        return row.Workload switch
        {
            "gemm" => new GemmWorkload(row.Batch, row.BFloat16),
            "vit-b32" => new ImageEncodeWorkload(NamedArchitectures.Get("ViT-B/32"), row.Batch, row.BFloat16, options.GradMode),
            "vit-b16" => new ImageEncodeWorkload(NamedArchitectures.Get("ViT-B/16"), row.Batch, row.BFloat16, options.GradMode),
            "rn50" => new ImageEncodeWorkload(NamedArchitectures.Get("RN50"), row.Batch, row.BFloat16, options.GradMode),
            "text" => new TextEncodeWorkload(NamedArchitectures.Get("ViT-B/32"), row.Batch, row.BFloat16, options.GradMode, skipPadding: false),
            "text-trim" => new TextEncodeWorkload(NamedArchitectures.Get("ViT-B/32"), row.Batch, row.BFloat16, options.GradMode, skipPadding: true),
            "train" => new TrainStepWorkload(SmallClip, row.Batch, row.BFloat16),
            "zeroshot-files" => new ZeroShotWorkload(NamedArchitectures.Get("ViT-B/32"), row.Batch, row.BFloat16, options, fromFiles: true),
            "zeroshot-model" => new ZeroShotWorkload(NamedArchitectures.Get("ViT-B/32"), row.Batch, row.BFloat16, options, fromFiles: false),
            _ => null,
        };
    }

    /// <summary>
    /// A model with only one real tower: the other one shrunk to a single narrow layer, so memory and set-up time
    /// reflect the tower being measured (as the baseline's stand-alone torchvision / text models do).
    /// </summary>
    internal static ClipModel BuildOneTower(ClipConfig full, bool image, bool bf16)
    {
        var c = image
            ? full with { TransformerWidth = 64, TransformerHeads = 1, TransformerLayers = 1 }
            : full with { VisionLayers = [1], VisionWidth = 64, VisionPatchSize = 32, ImageResolution = 32, VisionHeadsOverride = 1 };
        var model = new ClipModel(c);
        model.eval();
        if (bf16) model.UseBFloat16Weights();
        return model;
    }

    internal static IDisposable GradScope(GradMode mode) => mode switch
    {
        GradMode.NoGrad => torch.no_grad(),
        GradMode.Inference => torch.inference_mode(),
        _ => torch.enable_grad(),
    };
}

/// <summary>2048³ matrix product through torch.mm: the compute ceiling the model rows are compared with.</summary>
internal sealed class GemmWorkload : IBenchmarkWorkload
{
    private readonly Tensor a, b;

    public GemmWorkload(int n, bool bf16)
    {
        var dtype = bf16 ? ScalarType.BFloat16 : ScalarType.Float32;
        using var da = torch.randn(n, n);
        a = da.to(dtype);
        using var db = torch.randn(n, n);
        b = db.to(dtype);
        FlopPerRun = 2.0 * n * n * n;
    }

    public string Implementation => "torch.mm";
    public double UnitsPerRun => 1;
    public string Unit => "mm/s";
    public double FlopPerRun { get; }
    public void Run() => torch.mm(a, b).Dispose();
    public void Dispose() { a.Dispose(); b.Dispose(); }
}

/// <summary>ClipModel.EncodeImage on a random batch.</summary>
internal sealed class ImageEncodeWorkload : IBenchmarkWorkload
{
    private readonly ClipModel model;
    private readonly Tensor pixels;
    private readonly GradMode grad;

    public ImageEncodeWorkload(ClipConfig config, int batch, bool bf16, GradMode grad)
    {
        this.grad = grad;
        model = BuiltInWorkloadProvider.BuildOneTower(config, image: true, bf16);
        pixels = torch.randn(batch, 3, config.ImageResolution, config.ImageResolution);
        UnitsPerRun = batch;
        FlopPerRun = batch * FlopCounts.ImageTower(config);
    }

    public string Implementation => $"ClipModel.EncodeImage, {grad}";
    public double UnitsPerRun { get; }
    public string Unit => "img/s";
    public double FlopPerRun { get; }

    public void Run()
    {
        using var g = BuiltInWorkloadProvider.GradScope(grad);
        using var scope = NewDisposeScope();
        model.EncodeImage(pixels);
    }

    public void Dispose() { model.Dispose(); pixels.Dispose(); }
}

/// <summary>ClipModel.EncodeText on random token ids with the EOT token at position 20.</summary>
internal sealed class TextEncodeWorkload : IBenchmarkWorkload
{
    /// <summary>Where the benchmark's texts end (the baseline's choice): position 20 of 77.</summary>
    const int EndOfText = 20;

    private readonly ClipModel model;
    private readonly Tensor ids;
    private readonly GradMode grad;
    private readonly bool skipPadding;

    public TextEncodeWorkload(ClipConfig config, int batch, bool bf16, GradMode grad, bool skipPadding)
    {
        this.grad = grad;
        this.skipPadding = skipPadding;
        model = BuiltInWorkloadProvider.BuildOneTower(config, image: false, bf16);
        ids = torch.randint(1, 49407, [batch, config.ContextLength], dtype: ScalarType.Int64);
        ids[TensorIndex.Colon, EndOfText] = torch.tensor(49407L);
        UnitsPerRun = batch;
        // FLOP of the positions actually computed, so GFLOP/s stays comparable.
        FlopPerRun = batch * FlopCounts.TextTower(skipPadding ? config with { ContextLength = EndOfText + 1 } : config);
    }

    public string Implementation => skipPadding
        ? $"ClipModel.EncodeText (positions after the batch's last end-of-text token skipped: {EndOfText + 1} of 77), {grad}"
        : $"ClipModel.EncodeText over all 77 positions, {grad}";
    public double UnitsPerRun { get; }
    public string Unit => "txt/s";
    public double FlopPerRun { get; }

    public void Run()
    {
        using var g = BuiltInWorkloadProvider.GradScope(grad);
        using var scope = NewDisposeScope();
        model.EncodeText(ids, skipPadding);
    }

    public void Dispose() { model.Dispose(); ids.Dispose(); }
}

/// <summary>
/// One optimisation step of the small CLIP as `clip train` runs it: <see cref="ClipTrainer.Step"/> — forward both
/// towers, symmetric contrastive loss, backward, gradient norm, AdamW (lr 5e-4, wd 0.2, betas 0.9/0.98, eps 1e-6;
/// no clipping, as the baseline), logit-scale clamp. bf16 is the trainer's mixed precision (<see cref="MixedPrecision"/>):
/// a bf16 compute copy runs forward and backward, float32 master weights and AdamW state.
/// </summary>
internal sealed class TrainStepWorkload : IBenchmarkWorkload
{
    private readonly ClipModel model;
    private readonly ClipTrainer trainer;
    private readonly Tensor pixels, ids;
    private readonly bool bf16;

    public TrainStepWorkload(ClipConfig config, int batch, bool bf16)
    {
        this.bf16 = bf16;
        torch.manual_seed(0);
        model = new ClipModel(config);
        model.train();
        trainer = new ClipTrainer(model, new TrainerOptions
        {
            AdamW = AdamWSettings.For(vit: true, weightDecay: 0.2),
            Schedule = new CosineSchedule(5e-4, 0, int.MaxValue),
            GradClip = null,
            Precision = bf16 ? TrainPrecision.Bf16 : TrainPrecision.Fp32,
        });
        pixels = torch.randn(batch, 3, config.ImageResolution, config.ImageResolution);
        ids = torch.randint(1, 49407, [batch, config.ContextLength], dtype: ScalarType.Int64);
        var eot = torch.randint(5, config.ContextLength, [batch], dtype: ScalarType.Int64);
        using (var rows = TorchScalars.Arange(batch))
        using (var value = torch.tensor(49407L))
            ids.index_put_(value, rows, eot);
        eot.Dispose();
        UnitsPerRun = batch;
        FlopPerRun = batch * FlopCounts.TrainSample(config, batch);
    }

    public string Implementation => bf16
        ? "ClipTrainer.Step: bf16 compute copy, fp32 master weights and AdamW state"
        : "ClipTrainer.Step: EncodeImage+EncodeText, symmetric InfoNCE, backward, AdamW";
    public double UnitsPerRun { get; }
    public string Unit => "samples/s";
    public double FlopPerRun { get; }

    public void Run()
    {
        using var scope = NewDisposeScope();
        trainer.Step(pixels, ids);
    }

    public void Dispose()
    {
        trainer.Dispose();
        model.Dispose();
        pixels.Dispose();
        ids.Dispose();
    }
}

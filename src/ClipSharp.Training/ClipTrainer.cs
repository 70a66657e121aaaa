using ClipSharp.Modeling;
using ClipSharp.Training.Distributed;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ClipSharp.Training;

/// <summary>Settings of <see cref="ClipTrainer"/> (the parts of <see cref="TrainConfig"/> that shape one step).</summary>
public sealed record TrainerOptions
{
    /// <summary>The objective.</summary>
    public LossKind Loss { get; init; } = LossKind.Infonce;

    /// <summary>Initial logit bias for the sigmoid loss.</summary>
    public double InitLogitBias { get; init; } = -10;

    /// <summary>ln(scale) is clamped to [0, this] after every step (ln 100).</summary>
    public double MaxLogitScale { get; init; } = Math.Log(100);

    /// <summary>Optimiser hyperparameters.</summary>
    public required AdamWSettings AdamW { get; init; }

    /// <summary>Learning-rate schedule.</summary>
    public required CosineSchedule Schedule { get; init; }

    /// <summary>Global gradient-norm clip (null or ≤ 0: off).</summary>
    public double? GradClip { get; init; } = 1.0;

    /// <summary>Micro-batch size for feature-caching accumulation (null: the whole batch at once).</summary>
    public int? MicroBatchSize { get; init; }

    /// <summary>Arithmetic of forward and backward (bf16: see <see cref="MixedPrecision"/>).</summary>
    public TrainPrecision Precision { get; init; } = TrainPrecision.Fp32;

    /// <summary>
    /// Data-parallel only: each rank computes its rows of the loss against the gathered features (open_clip's
    /// <c>local_loss</c>) instead of the whole N × N loss; the result is the same.
    /// </summary>
    public bool LocalLoss { get; init; }

    /// <summary>Builds the options from a training config for a model of the given architecture.</summary>
    public static TrainerOptions From(TrainConfig cfg, ClipConfig arch)
    {
        var d = AdamWSettings.For(arch.IsVit, cfg.Optimizer.WeightDecay);
        return new TrainerOptions
        {
            Loss = cfg.Loss.Type,
            InitLogitBias = cfg.Loss.InitLogitBias,
            MaxLogitScale = cfg.Loss.MaxLogitScale,
            AdamW = d with { Beta1 = cfg.Optimizer.Beta1 ?? d.Beta1, Beta2 = cfg.Optimizer.Beta2 ?? d.Beta2, Eps = cfg.Optimizer.Eps ?? d.Eps },
            Schedule = new CosineSchedule(cfg.Optimizer.Lr, cfg.Schedule.WarmupSteps, cfg.Schedule.Steps, cfg.Schedule.MinLr),
            GradClip = cfg.Optimizer.GradClip,
            MicroBatchSize = cfg.Data.MicroBatchSize,
            Precision = cfg.Model.Precision,
            LocalLoss = cfg.Distributed.LocalLoss,
        };
    }
}

/// <summary>What one optimiser step did.</summary>
/// <param name="Step">1-based index of the step just taken.</param>
/// <param name="Loss">Loss of the batch before the update.</param>
/// <param name="Lr">Learning rate used.</param>
/// <param name="GradNorm">Global gradient norm before clipping.</param>
/// <param name="LogitScale">exp(logit_scale) after the update and clamp.</param>
public sealed record StepResult(long Step, double Loss, double Lr, double GradNorm, double LogitScale);

/// <summary>
/// One CLIP training step: contrastive loss over the whole batch (optionally accumulated over micro-batches with
/// cached features so the result equals the large-batch gradient), gradient clipping, AdamW with CLIP's
/// parameter groups, the warm-up + cosine schedule, and the logit-scale clamp. Every step runs in its own
/// dispose scope; nothing but parameters, gradients and optimiser moments outlives it.
/// </summary>
public sealed class ClipTrainer : IDisposable
{
    private readonly Parameter? logitBias;
    private readonly MixedPrecision? mixed;

    /// <summary>Creates a trainer for <paramref name="model"/> (whose frozen parameters must already have requires_grad off).</summary>
    public ClipTrainer(ClipModel model, TrainerOptions options)
    {
        Model = model;
        Options = options;
        if (options.Loss == LossKind.Sigmoid)
            logitBias = new Parameter(torch.tensor((float)options.InitLogitBias));
        if (options.Precision == TrainPrecision.Bf16) mixed = new MixedPrecision(model);
        Optimizer = new ClipAdamW(NamedParameters(), options.AdamW);
    }

    /// <summary>The model being trained.</summary>
    public ClipModel Model { get; }

    /// <summary>The settings.</summary>
    public TrainerOptions Options { get; }

    /// <summary>The optimiser.</summary>
    public ClipAdamW Optimizer { get; }

    /// <summary>The bf16 compute copy of the model (null in fp32 training).</summary>
    internal MixedPrecision? Mixed => mixed;

    /// <summary>The model that runs forward and backward: the bf16 compute copy, or <see cref="Model"/> itself.</summary>
    private ClipModel Net => mixed?.Compute ?? Model;

    /// <summary>The sigmoid loss's learnable bias (null for InfoNCE).</summary>
    public Parameter? LogitBias => logitBias;

    /// <summary>
    /// Data-parallel training: the batches passed in are this rank's share of each global batch, the loss covers the
    /// whole global batch, and gradients are summed over ranks before clipping (see <see cref="DataParallel"/>).
    /// Null: single-process training.
    /// </summary>
    internal GradientReducer? DataParallelGroup { get; set; }

    /// <summary>Optimiser steps taken (the schedule position).</summary>
    public long StepCount => Optimizer.StepCount;

    /// <summary>The model's parameters by OpenAI key name, plus "logit_bias" for the sigmoid loss.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> NamedParameters()
    {
        foreach (var (name, p) in Model.named_parameters()) yield return (name, p);
        if (logitBias is not null) yield return ("logit_bias", logitBias);
    }

    /// <summary>The configured loss on unnormalised features (scalar, differentiable).</summary>
    public Tensor Loss(Tensor imageFeatures, Tensor textFeatures) => Options.Loss switch
    {
        LossKind.Sigmoid => ContrastiveLoss.Sigmoid(imageFeatures, textFeatures, Net.LogitScale, logitBias!),
        _ => ContrastiveLoss.Symmetric(imageFeatures, textFeatures, Net.LogitScale),
    };

    private bool ImageTrainable => Model.Visual.parameters().Any(p => p.requires_grad);
    private bool TextTrainable => Model.named_parameters().Any(p => !p.name.StartsWith("visual.", StringComparison.Ordinal) && p.name != "logit_scale" && p.parameter.requires_grad);

    /// <summary>
    /// Computes the batch loss and accumulates its gradient into every trainable parameter's <c>.grad</c>.
    /// With a micro-batch size m &lt; N, first encodes all micro-batches without autograd, computes the loss and its
    /// gradient with respect to the cached features, then re-encodes each micro-batch with autograd and
    /// back-propagates that feature gradient: the parameter gradients equal those of the single N-sized batch,
    /// while activations are only ever held for m samples.
    /// </summary>
    /// <returns>The loss value.</returns>
    public double LossAndBackward(Tensor pixels, Tensor inputIds, int? microBatchSize = null)
    {
        if (mixed is null) return LossAndBackwardOn(Model, pixels, inputIds, microBatchSize);
        mixed.Sync();
        double loss = LossAndBackwardOn(mixed.Compute, pixels, inputIds, microBatchSize);
        mixed.GradientsToMasters();
        return loss;
    }

    private double LossAndBackwardOn(ClipModel net, Tensor pixels, Tensor inputIds, int? microBatchSize)
    {
        using var scope = NewDisposeScope();
        long n = pixels.shape[0];
        if (inputIds.shape[0] != n) throw new ArgumentException($"batch mismatch: {n} images, {inputIds.shape[0]} texts");
        long m = Math.Min(n, microBatchSize ?? Options.MicroBatchSize ?? n);
        bool img = ImageTrainable, txt = TextTrainable;
        var group = DataParallelGroup?.Communicator;
        bool local = group is not null && Options.LocalLoss;
        if (m >= n && !local)
        {
            Tensor imageFeatures, textFeatures;
            using (torch.set_grad_enabled(img)) imageFeatures = net.EncodeImage(pixels);
            using (torch.set_grad_enabled(txt)) textFeatures = net.EncodeText(inputIds);
            if (group is not null)
            {
                imageFeatures = DataParallel.GlobalRows(group, imageFeatures);
                textFeatures = DataParallel.GlobalRows(group, textFeatures);
            }
            var loss = Loss(imageFeatures, textFeatures);
            DataParallelGroup?.Arm();
            loss.backward();
            KeepWholeLossGradientsOnRankZero(net);
            return loss.item<float>();
        }
        // The loss is computed on detached copies of the features; its gradient with respect to them is then
        // back-propagated through the towers: at once (local loss over the whole share), or micro-batch by
        // micro-batch, re-encoding each with autograd so that activations are held for m samples only.
        if (n % m != 0) throw new ArgumentException($"micro-batch size {m} does not divide the batch {n}");
        long k = n / m;
        Tensor? liveImg = null, liveTxt = null;
        Tensor allImg, allTxt;
        if (m >= n)
        {
            using (torch.set_grad_enabled(img)) liveImg = net.EncodeImage(pixels);
            using (torch.set_grad_enabled(txt)) liveTxt = net.EncodeText(inputIds);
            allImg = liveImg.detach();
            allTxt = liveTxt.detach();
        }
        else
        {
            using var _ = torch.no_grad();
            var imgs = new List<Tensor>();
            var txts = new List<Tensor>();
            for (long i = 0; i < k; i++)
            {
                using var inner = NewDisposeScope();
                imgs.Add(net.EncodeImage(pixels.narrow(0, i * m, m)).MoveToOuterDisposeScope());
                txts.Add(net.EncodeText(inputIds.narrow(0, i * m, m)).MoveToOuterDisposeScope());
            }
            allImg = torch.cat(imgs, 0);
            allTxt = torch.cat(txts, 0);
            foreach (var t in imgs.Concat(txts)) t.Dispose();
        }
        if (group is not null)
        {
            using var _ = torch.no_grad();
            allImg = DataParallel.GlobalRows(group, allImg);
            allTxt = DataParallel.GlobalRows(group, allTxt);
        }
        allImg.requires_grad_(img);
        allTxt.requires_grad_(txt);
        double value;
        if (local)
        {
            // This rank's rows of the loss (Σ over ranks = the whole-batch loss); the temperature's gradient is a share too.
            var part = LocalLoss(allImg, allTxt, group!);
            part.backward();
            Span<double> sum = [part.item<float>()];
            group!.AllReduceSum(sum);
            value = sum[0];
        }
        else
        {
            var total = Loss(allImg, allTxt);
            total.backward();
            KeepWholeLossGradientsOnRankZero(net);
            value = total.item<float>();
        }
        Tensor imgGrad = img ? allImg.grad! : allImg, txtGrad = txt ? allTxt.grad! : allTxt;
        if (group is not null)
        {
            // Whole loss: every rank has the gradient of every row, its own included. Local loss: each rank has a part of
            // every row's gradient, summed over ranks into the rows' owners.
            if (img) imgGrad = local ? DataParallel.SumToLocalRows(group, imgGrad) : DataParallel.LocalRows(group, imgGrad);
            if (txt) txtGrad = local ? DataParallel.SumToLocalRows(group, txtGrad) : DataParallel.LocalRows(group, txtGrad);
        }
        if (liveImg is not null && liveTxt is not null)
        {
            DataParallelGroup?.Arm();
            if (img) liveImg.mul(imgGrad).sum().backward();
            if (txt) liveTxt.mul(txtGrad).sum().backward();
            return value;
        }
        for (long i = 0; i < k; i++)
        {
            using var inner = NewDisposeScope();
            // Gradients accumulate over the micro-batches: only the last backward pass makes them final.
            if (i == k - 1) DataParallelGroup?.Arm();
            if (img)
            {
                var f = net.EncodeImage(pixels.narrow(0, i * m, m));
                f.mul(imgGrad.narrow(0, i * m, m)).sum().backward();
            }
            if (txt)
            {
                var f = net.EncodeText(inputIds.narrow(0, i * m, m));
                f.mul(txtGrad.narrow(0, i * m, m)).sum().backward();
            }
        }
        return value;
    }

    /// <summary>This rank's rows of the configured loss over the global features (open_clip's <c>local_loss</c>).</summary>
    private Tensor LocalLoss(Tensor imageFeatures, Tensor textFeatures, Communicator group)
    {
        using var scope = NewDisposeScope();
        long total = imageFeatures.shape[0], n = total / group.WorldSize;
        using Scalar w = ((long)group.WorldSize).ToScalar(), r = ((long)group.Rank).ToScalar();
        var rows = TorchScalars.Arange(n).mul(w).add(r, TorchScalars.IntOne);
        return (Options.Loss switch
        {
            LossKind.Sigmoid => ContrastiveLoss.SigmoidRows(imageFeatures, textFeatures, Net.LogitScale, logitBias!, rows),
            _ => ContrastiveLoss.SymmetricRows(imageFeatures, textFeatures, Net.LogitScale, rows),
        }).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// In data-parallel training every rank computes the same whole-batch loss, so the gradient of the parameters that
    /// enter it directly (the temperature, SigLIP's bias) is complete on each rank; only rank 0's copy may enter the sum.
    /// </summary>
    private void KeepWholeLossGradientsOnRankZero(ClipModel net)
    {
        if (DataParallelGroup is not { Communicator.Rank: > 0 }) return;
        using var _ = torch.no_grad();
        net.LogitScale.grad?.zero_();
        logitBias?.grad?.zero_();
    }

    /// <summary>One optimiser step on a batch: zero grads, loss + backward, clip, AdamW at the scheduled rate, clamp logit_scale.</summary>
    public StepResult Step(Tensor pixels, Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        Model.train();
        Optimizer.ZeroGrad();
        double loss = LossAndBackward(pixels, inputIds);
        DataParallelGroup?.SumGradients(Optimizer.Parameters);
        double norm = ClipGradients(Options.GradClip);
        double lr = Options.Schedule.At(Optimizer.StepCount);
        Optimizer.Step(lr);
        Optimizer.ZeroGrad();
        double scale;
        using (torch.no_grad())
        {
            using Scalar low = 0.0.ToScalar(), high = Options.MaxLogitScale.ToScalar();
            Model.LogitScale.clamp_(low, high);
            scale = Math.Exp(Model.LogitScale.item<float>());
        }
        return new StepResult(Optimizer.StepCount, loss, lr, norm, scale);
    }

    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public double ClipGradients(double? maxNorm)
    {
        using var _ = torch.no_grad();
        using var scope = NewDisposeScope();
        var grads = Optimizer.Parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0;
        double norm = torch.stack(grads.Select(g => g.norm()).ToList()).norm().item<float>();
        if (maxNorm is double max && max > 0 && norm > max)
        {
            using Scalar factor = (max / (norm + 1e-6)).ToScalar();
            foreach (var g in grads) g.mul_(factor);
        }
        return norm;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Optimizer.Dispose();
        mixed?.Dispose();
        logitBias?.Dispose();
    }
}

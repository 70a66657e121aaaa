using System.Diagnostics;
using System.Globalization;
using ClipSharp.Checkpoints;
using ClipSharp.Imaging;
using ClipSharp.Modeling;
using ClipSharp.Text;
using ClipSharp.Training.Data;
using ClipSharp.Training.Distributed;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Training;

/// <summary>Progress of a run, reported after every step.</summary>
/// <param name="Result">The step.</param>
/// <param name="TotalSteps">Steps of the whole run.</param>
/// <param name="SamplesPerSecond">Throughput since this process started training.</param>
/// <param name="Eta">Estimated time to the end.</param>
/// <param name="SkippedSamples">Samples skipped so far (undecodable images).</param>
public sealed record RunProgress(StepResult Result, long TotalSteps, double SamplesPerSecond, TimeSpan Eta, long SkippedSamples);

/// <summary>What a finished (or stopped) run produced.</summary>
/// <param name="Steps">Optimiser steps done.</param>
/// <param name="FinalWeights">final.safetensors (OpenAI layout), or null when the run stopped early.</param>
/// <param name="LastCheckpoint">The newest training checkpoint.</param>
/// <param name="LastValidation">Metrics of the last validation.</param>
/// <param name="SamplesPerSecond">Training throughput in this process.</param>
public sealed record RunResult(long Steps, string? FinalWeights, string? LastCheckpoint, IReadOnlyDictionary<string, double> LastValidation, double SamplesPerSecond);

/// <summary>
/// A whole training run from a <see cref="TrainConfig"/>: builds or loads the model, applies freezing, streams
/// augmented batches, steps the <see cref="ClipTrainer"/>, logs metrics (JSONL + TensorBoard), validates, and
/// writes atomic checkpoints (model, optimiser, schedule step, RNG, data position) that <c>resume</c> continues
/// from exactly. The run directory receives <c>config.resolved.json</c>, <c>checkpoints/</c>, <c>best.safetensors</c>
/// and <c>final.safetensors</c> (OpenAI layout).
/// </summary>
public sealed class TrainingRun : IDisposable
{
    private readonly TrainConfig cfg;
    private readonly string baseDirectory;
    private readonly ClipTokenizer tokenizer;
    private readonly IReadOnlyList<PairSource> sources;
    private readonly PairSource? valSource;

    /// <summary>Prepares a run. <paramref name="baseDirectory"/> resolves relative paths in the config (the config file's folder).</summary>
    /// <param name="config">The resolved config.</param>
    /// <param name="baseDirectory">Folder relative data paths are read against.</param>
    /// <param name="tokenizer">Tokenizer (null: <see cref="VocabularyLocator"/> with <c>data.vocab</c>).</param>
    /// <param name="sources">Training sources (null: opened from <c>data.train</c>).</param>
    /// <param name="validation">Validation pairs (null: opened from <c>data.val</c> if set).</param>
    public TrainingRun(TrainConfig config, string baseDirectory, ClipTokenizer? tokenizer = null,
        IReadOnlyList<PairSource>? sources = null, PairSource? validation = null)
    {
        cfg = config;
        this.baseDirectory = baseDirectory;
        this.tokenizer = tokenizer ?? LoadVocabulary();
        this.sources = sources ?? cfg.Data.Train.Select(s => PairSource.Open(s, baseDirectory)).ToList();
        if (this.sources.Count == 0) throw new ClipSharpException("data.train lists no sources");
        valSource = validation ?? (cfg.Data.Val is { } v ? PairSource.Open(v, baseDirectory) : null);
        RunDirectory = Path.GetFullPath(Path.IsPathRooted(cfg.Output.Dir) ? cfg.Output.Dir : Path.Combine(Environment.CurrentDirectory, cfg.Output.Dir));
        Store = new CheckpointStore(RunDirectory, cfg.Output.KeepLast);
    }

    /// <summary>The run directory.</summary>
    public string RunDirectory { get; }

    /// <summary>The checkpoint folder manager (exposed for tests' fault injection).</summary>
    internal CheckpointStore Store { get; }

    /// <summary>Called after every step.</summary>
    public Action<RunProgress>? OnProgress { get; set; }

    /// <summary>Called with log lines (validation results, checkpoints, skipped samples).</summary>
    public Action<string>? OnLog { get; set; }

    /// <summary>
    /// Data-parallel training over the processes of an MPI job (null or world size 1: this process alone; see
    /// <see cref="Communicator.Join"/>). <c>data.batch_size</c> is the global batch; each rank loads and encodes its
    /// share (see <see cref="DataParallel"/>). Rank 0 alone reads the resume checkpoint, validates and writes files; at
    /// the start it broadcasts its weights, optimiser state and data positions, so the others need only the data and
    /// the config.
    /// </summary>
    public Communicator? Distributed { get; init; }

    /// <summary>The training sources.</summary>
    public IReadOnlyList<PairSource> Sources => sources;

    /// <summary>
    /// <c>data.vocab</c>; without it, the vocabulary of <c>model.init_from</c> (recorded in or kept beside a checkpoint
    /// ClipSharp wrote), else the defaults of <see cref="VocabularyLocator"/>.
    /// </summary>
    private ClipTokenizer LoadVocabulary()
    {
        if (cfg.Data.Vocab is not null || cfg.Model.InitFrom is null) return VocabularyLocator.Load(ResolvePath(cfg.Data.Vocab));
        string init = ResolvePath(cfg.Model.InitFrom)!;
        VocabularyRecord? declared = File.Exists(init) && init.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
            ? VocabularyRecord.FromMetadata(SafeTensors.ReadHeader(init).Metadata, init) : null;
        return VocabularyLocator.Load(null, init, declared);
    }

    private string? ResolvePath(string? p) => p is null ? null : Path.IsPathRooted(p) ? p : Path.GetFullPath(Path.Combine(baseDirectory, p));

    /// <summary>
    /// Trains until <c>schedule.steps</c> (or until <paramref name="stopAfterStep"/>, which simulates a killed run),
    /// resuming from <paramref name="resume"/> ("latest", or a checkpoint path) when given.
    /// </summary>
    public RunResult Run(string? resume = null, long? stopAfterStep = null, CancellationToken cancel = default)
    {
        var group = Distributed is { WorldSize: > 1 } d ? d : null;
        int world = group?.WorldSize ?? 1;
        setUpReported = false;
        try
        {
            if (group is not null)
            {
                // Before any rank reads a checkpoint or builds a model: everything that shapes a step must agree, or the
                // ranks' gradients would not add up (all ranks see the same digests, so all of them stop alike).
                group.Agree(Convert.FromHexString(Fingerprint()), FingerprintDescription);
            }
            if (cfg.Data.BatchSize % world != 0)
                throw new ClipSharpException($"data.batch_size {cfg.Data.BatchSize} (the global batch) does not split evenly over {world} processes");
            if (cfg.Data.MicroBatchSize is int micro && cfg.Data.BatchSize / world % micro != 0)
                throw new ClipSharpException(
                    $"data.micro_batch_size {micro} applies to each process's share of the batch ({cfg.Data.BatchSize} / {world} = {cfg.Data.BatchSize / world}) and must divide it");
        }
        catch (ClipSharpException e) when (group is not null && e is not DistributedException)
        {
            group.FailureShared = true; // the same config on every rank (agreed above): they all stop here, alike
            throw;
        }
        try
        {
            return RunConnected(group, resume, stopAfterStep, cancel);
        }
        catch (Exception e) when (group is { Rank: 0 } && !setUpReported && e is not DistributedException)
        {
            // The others wait in the set-up broadcast: tell them why rank 0 stopped, so every rank reports the cause.
            group.Broadcast(System.Text.Encoding.UTF8.GetBytes($"{e.GetType().Name}: {e.Message}"));
            group.FailureShared = true;
            throw;
        }
    }

    private const string FingerprintDescription =
        "the run's settings (model, optimiser, schedule, loss, freezing, augmentation, batch, seed, precision, checkpoint cadence, " +
        "distributed section) or its data (each source's size and weight, the vocabulary); start every rank with the same config and data";

    /// <summary>Rank 0 has told the others its set-up succeeded (after that, a failure reaches them as a lost rank).</summary>
    private bool setUpReported;

    private RunResult RunConnected(Communicator? group, string? resume, long? stopAfterStep, CancellationToken cancel)
    {
        int world = group?.WorldSize ?? 1, rank = group?.Rank ?? 0;
        bool lead = rank == 0;
        if (lead)
        {
            Directory.CreateDirectory(RunDirectory);
            // A run killed while writing leaves temporary files (never a torn checkpoint: every file is renamed into place).
            int stale = AtomicFile.RemoveStale(RunDirectory) + AtomicFile.RemoveStale(Store.Directory, stagedCheckpoints: true);
            if (stale > 0) OnLog?.Invoke($"removed {stale} temporary file(s) left by an interrupted run");
            AtomicFile.WriteAllText(Path.Combine(RunDirectory, "config.resolved.json"), cfg.ToJson());
            // The weights written here record their vocabulary; a copy of it beside them lets them load with no flags.
            VocabularyLocator.SaveBeside(tokenizer, RunDirectory);
        }
        FailPoints.Reach(FailPoints.Start);

        GradientReducer? reducerToDispose = null;
        TrainingCheckpoint? ckpt = null;
        if (resume is not null && lead)
        {
            string? path = resume == "latest" ? Store.Latest() : ResolvePath(resume);
            if (path is null) OnLog?.Invoke("resume: no checkpoint yet, starting fresh");
            else
            {
                ckpt = CheckpointStore.Load(path);
                FailPoints.Reach(FailPoints.Resumed);
            }
        }
        try
        {
            torch.manual_seed(cfg.Seed);
            using var model = BuildModel(ckpt);
            model.Vocabulary = tokenizer.Vocabulary; // recorded in best/final.safetensors by Save
            var arch = model.Config;
            if (lead) AtomicFile.WriteAllText(Path.Combine(RunDirectory, "model.config.json"), arch.ToJson());
            var frozen = Freezing.Apply(model, cfg.Freeze);
            if (frozen.Count > 0) OnLog?.Invoke($"frozen: {frozen.Count} parameter tensors");
            if (cfg.Model.GradCheckpointing) GradientCheckpointing.Enable(model);
            using var trainer = new ClipTrainer(model, TrainerOptions.From(cfg, arch));
            if (ckpt is null && cfg.Model.InitFrom is null)
            {
                double init = cfg.Loss.InitLogitScale ?? (cfg.Loss.Type == LossKind.Sigmoid ? Math.Log(10) : Math.Log(1 / 0.07));
                using Scalar initScalar = init.ToScalar();
                using (torch.no_grad()) model.LogitScale.fill_(initScalar);
            }
            var positions = new long[world];
            double best = double.NaN;
            if (ckpt is not null) (positions, best) = Restore(ckpt, trainer, world);
            ckpt?.Dispose();
            ckpt = null;
            // The ResNet's BatchNorms normalise over the whole global batch (statistics all-reduced), as in one process.
            if (group is not null && model.Visual is ModifiedResNet resnet) SyncBatchNorm.Enable(resnet, group);
            if (group is not null)
            {
                // Rank 0 says whether its set-up worked (its failure message otherwise, sent from Run), then all
                // ranks check they built the same architecture, then rank 0's state is shared.
                var status = group.Broadcast(lead ? [] : null);
                setUpReported = true;
                if (status.Length > 0)
                {
                    group.FailureShared = true;
                    throw new DistributedException($"rank 0 stopped during set-up: {System.Text.Encoding.UTF8.GetString(status)}");
                }
                group.Agree(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(arch.ToJson())),
                    $"the model architecture it built (rank {rank}: {arch}); check model.config and model.init_from on every machine");
                OnLog?.Invoke($"data-parallel: rank {rank} of {world} on {group.Host} (pid {Environment.ProcessId}), {cfg.Data.BatchSize / world} of every {cfg.Data.BatchSize} pairs; {group.LibraryVersion}");
                (positions, best) = ShareStateFromRankZero(group, trainer, positions, best);
                // Overlap needs the backward pass free of other collectives and the gradients final where the blocks report
                // them: not with the ResNet's synchronised BatchNorm (all-reduces in its backward), nor with bf16 (gradients
                // reach the float32 masters only after the backward pass).
                bool overlap = cfg.Distributed.Overlap && arch.IsVit && trainer.Mixed is null;
                if (cfg.Distributed.Overlap && !overlap)
                    OnLog?.Invoke($"distributed.overlap is off for this run: {(arch.IsVit ? "bf16 gradients reach the float32 weights after the backward pass" : "the ResNet's synchronised BatchNorm all-reduces during the backward pass")}");
                var reducer = new GradientReducer(group, (long)(cfg.Distributed.BucketMb * (1 << 20)), overlap);
                if (overlap) reducer.WatchBlocks(model);
                trainer.DataParallelGroup = reducer;
                reducerToDispose = reducer;
            }
            long dataPosition = positions[rank];

            int? fold = arch.VocabSize < tokenizer.VocabSize ? arch.VocabSize : null;
            // Training and validation pixels are normalised as the model's inference will normalise them: with the
            // constants the checkpoint being fine-tuned declares (CLIP's for a fresh model).
            var (mean, std) = model.Normalisation;
            if (model.Normalisation != (ClipImagePreprocessorOptions.ClipMean, ClipImagePreprocessorOptions.ClipStd))
                OnLog?.Invoke(FormattableString.Invariant($"normalising images with the model's mean ({mean.R}, {mean.G}, {mean.B}) and std ({std.R}, {std.G}, {std.B})"));
            var validator = !lead ? null : new Validator(tokenizer, arch.ImageResolution, arch.ContextLength, fold, valSource, cfg.Data.ValLimit, cfg.Data.ZeroShot, baseDirectory, model.Normalisation);
            using var metrics = lead ? new MetricsLog(RunDirectory, cfg.Output.Tensorboard, continueFromStep: trainer.StepCount) : null;
            using var loader = new TrainingDataLoader(sources, tokenizer, new LoaderOptions
            {
                BatchSize = cfg.Data.BatchSize / world, ImageSize = arch.ImageResolution, ContextLength = arch.ContextLength,
                Workers = cfg.Data.Workers, Prefetch = cfg.Data.Prefetch, Augment = cfg.Data.Augment, Seed = cfg.Seed, VocabSize = fold,
                Rank = rank, WorldSize = world, Mean = mean, Std = std,
            }, dataPosition);

            long total = cfg.Schedule.Steps;
            long startStep = trainer.StepCount;
            var clock = Stopwatch.StartNew();
            string? lastCheckpoint = lead ? Store.Latest() : null;
            IReadOnlyDictionary<string, double> lastVal = new Dictionary<string, double>();
            double sps = 0;
            model.train();
            FailPoints.Reach(FailPoints.Ready);
            while (trainer.StepCount < total)
            {
                cancel.ThrowIfCancellationRequested();
                var batch = loader.Next(cancel);
                if (batch.Skipped > 0)
                    foreach (var reason in batch.SkipReasons) OnLog?.Invoke($"skipped {reason}");
                StepResult r;
                using (var scope = NewDisposeScope())
                {
                    var (pixels, ids) = batch.ToTensors();
                    r = trainer.Step(pixels, ids);
                }
                dataPosition = batch.EndPosition;
                FailPoints.Reach(FailPoints.StepComputed, r.Step);
                long done = trainer.StepCount - startStep;
                sps = done * (double)cfg.Data.BatchSize / clock.Elapsed.TotalSeconds;
                var eta = TimeSpan.FromSeconds((total - trainer.StepCount) * clock.Elapsed.TotalSeconds / done);
                OnProgress?.Invoke(new RunProgress(r, total, sps, eta, loader.SkippedTotal));
                bool last = trainer.StepCount == total;
                if (trainer.StepCount % Math.Max(1, cfg.Output.LogEvery) == 0 || last)
                    metrics?.Write(r.Step, new Dictionary<string, double>
                    {
                        ["train/loss"] = r.Loss, ["train/lr"] = r.Lr, ["train/logit_scale"] = r.LogitScale,
                        ["train/grad_norm"] = r.GradNorm, ["train/samples_per_s"] = sps, ["train/skipped"] = loader.SkippedTotal,
                    });
                FailPoints.Reach(FailPoints.StepLogged, r.Step);
                bool evalNow = validator is { HasWork: true } && (last || (cfg.Output.EvalEvery > 0 && trainer.StepCount % cfg.Output.EvalEvery == 0));
                if (evalNow)
                {
                    lastVal = validator!.Evaluate(model);
                    metrics!.Write(r.Step, lastVal);
                    OnLog?.Invoke($"step {r.Step}: " + string.Join(", ", lastVal.Select(kv => $"{kv.Key} {kv.Value:F4}")));
                    if (lastVal.TryGetValue(cfg.Output.BestMetric, out var m) && IsBetter(m, best))
                    {
                        best = m;
                        model.Save(Path.Combine(RunDirectory, "best.safetensors"), new Dictionary<string, string>
                        {
                            ["step"] = r.Step.ToString(CultureInfo.InvariantCulture),
                            [cfg.Output.BestMetric] = m.ToString("R", CultureInfo.InvariantCulture),
                        });
                    }
                }
                bool stopping = stopAfterStep is long s && trainer.StepCount >= s;
                if (last || stopping || (cfg.Output.CheckpointEvery > 0 && trainer.StepCount % cfg.Output.CheckpointEvery == 0))
                {
                    // Every rank's data position goes into the checkpoint (one collective, on every rank alike).
                    positions = group is null ? [dataPosition] : GatherPositions(group, dataPosition);
                    if (lead)
                    {
                        lastCheckpoint = SaveCheckpoint(trainer, positions, best, loader.SkippedTotal);
                        OnLog?.Invoke($"checkpoint {lastCheckpoint}");
                    }
                }
                if (stopping && !last) return new RunResult(trainer.StepCount, null, lastCheckpoint, lastVal, sps);
            }
            if (group is not null && trainer.DataParallelGroup is { } dp && trainer.StepCount > startStep)
            {
                long steps = trainer.StepCount - startStep;
                OnLog?.Invoke(string.Create(CultureInfo.InvariantCulture,
                    $"data-parallel: rank {rank}: {dp.BytesReduced / steps / 1e6:F2} MB of gradients and {dp.Buckets / (double)steps:F1} all-reduces per step; " +
                    $"{1e3 * dp.CommunicationTime.TotalSeconds / steps:F1} ms/step in gradient all-reduces, {1e3 * dp.ExposedTime.TotalSeconds / steps:F1} ms/step waited for them" +
                    $"{(dp.Overlap ? $" ({dp.EarlyGradients / (double)steps:F0} gradients per step handed over during the backward pass)" : "")}, {1e3 * group.CommunicationTime.TotalSeconds / steps:F1} ms/step in all MPI calls; " +
                    $"{1e3 * clock.Elapsed.TotalSeconds / steps:F0} ms/step in all"));
            }
            if (!lead) return new RunResult(trainer.StepCount, null, null, lastVal, sps);
            string final = Path.Combine(RunDirectory, "final.safetensors");
            model.Save(final, new Dictionary<string, string> { ["step"] = trainer.StepCount.ToString(CultureInfo.InvariantCulture) });
            return new RunResult(trainer.StepCount, final, lastCheckpoint, lastVal, sps);
        }
        finally
        {
            ckpt?.Dispose();
            reducerToDispose?.Dispose();
        }
    }

    private bool IsBetter(double value, double best) =>
        double.IsNaN(best) || (cfg.Output.BestMetric.EndsWith("loss", StringComparison.Ordinal) ? value < best : value > best);

    private ClipModel BuildModel(TrainingCheckpoint? ckpt)
    {
        var arch = cfg.Model.Resolve();
        if (ckpt is not null && ckpt.Metadata.TryGetValue("model_config", out var json)) arch = ClipConfig.FromJson(json, ckpt.Path);
        if (arch is null || (cfg.Model.InitFrom is not null && ckpt is null))
        {
            var loaded = ClipModel.Load(ResolvePath(cfg.Model.InitFrom)!, null);
            if (arch is not null && !arch.Equals(loaded.Config))
            {
                loaded.Dispose();
                throw new ClipSharpException($"model.init_from {cfg.Model.InitFrom} has architecture {loaded.Config}, which differs from the configured {arch}");
            }
            return loaded;
        }
        var built = new ClipModel(arch);
        if (ckpt is not null && PreprocessingConfig.Find(ckpt.Path, ckpt.Metadata) is { } declared) built.Normalisation = declared;
        return built;
    }

    private (long[] DataPositions, double Best) Restore(TrainingCheckpoint ckpt, ClipTrainer trainer, int world)
    {
        // The token embedding's rows mean the tokens of the vocabulary the checkpoint was trained with.
        if (VocabularyRecord.FromMetadata(ckpt.Metadata, ckpt.Path) is { } trained && !trained.SameContent(tokenizer.Vocabulary))
            throw new ClipSharpException(
                $"{ckpt.Path}: trained with the vocabulary {trained}, but this run tokenizes with {tokenizer.Source} ({tokenizer.Vocabulary}); set data.vocab to the checkpoint's vocabulary");
        int saved = ckpt.Metadata.TryGetValue("world_size", out var ws) ? int.Parse(ws, CultureInfo.InvariantCulture) : 1;
        if (saved != world)
            throw new ClipSharpException(
                $"{ckpt.Path}: written by a run of {saved} process(es); resume it with {saved} (each process's place in the data is saved), not {world}");
        var model = new List<KeyValuePair<string, Tensor>>();
        var optim = new Dictionary<string, Tensor>();
        foreach (var (k, t) in ckpt.Tensors)
        {
            if (k.StartsWith("model.", StringComparison.Ordinal)) model.Add(KeyValuePair.Create(k[6..], t));
            else if (k.StartsWith("optim.", StringComparison.Ordinal)) optim[k[6..]] = t;
        }
        trainer.Model.LoadWeights(model, ckpt.Path);
        trainer.Optimizer.LoadState(ckpt.Step, optim);
        if (trainer.LogitBias is not null && ckpt.Tensors.TryGetValue("trainer.logit_bias", out var bias))
            using (torch.no_grad()) trainer.LogitBias.copy_(bias);
        if (ckpt.Tensors.TryGetValue("rng.torch", out var rng)) torch.random.set_rng_state(rng);
        long[] pos = ckpt.Metadata.TryGetValue("data_positions", out var list)
            ? list.Split(',').Select(x => long.Parse(x, CultureInfo.InvariantCulture)).ToArray()
            : [long.Parse(ckpt.Metadata["data_position"], CultureInfo.InvariantCulture)];
        if (pos.Length != world) throw new ClipSharpException($"{ckpt.Path}: {pos.Length} data positions for {world} process(es)");
        double best = ckpt.Metadata.TryGetValue("best", out var b) ? double.Parse(b, CultureInfo.InvariantCulture) : double.NaN;
        OnLog?.Invoke($"resumed from {ckpt.Path} at step {ckpt.Step}, data position {string.Join(",", pos)}");
        return (pos, best);
    }

    private string SaveCheckpoint(ClipTrainer trainer, long[] dataPositions, double best, long skipped)
    {
        var (sd, meta) = CheckpointContents(trainer, dataPositions, best, skipped);
        using (sd) return Store.Save(trainer.StepCount, sd, meta);
    }

    private (StateDict Tensors, Dictionary<string, string> Metadata) CheckpointContents(ClipTrainer trainer, long[] dataPositions, double best, long skipped)
    {
        var sd = new StateDict();
        foreach (var (k, t) in trainer.Model.state_dict()) sd.Add("model." + k, t.detach());
        foreach (var (k, t) in trainer.Optimizer.StateTensors()) sd.Add("optim." + k, t.detach());
        if (trainer.LogitBias is not null) sd.Add("trainer.logit_bias", trainer.LogitBias.detach());
        sd.Add("rng.torch", torch.random.get_rng_state());
        var meta = new Dictionary<string, string>
        {
            ["step"] = trainer.StepCount.ToString(CultureInfo.InvariantCulture),
            ["data_position"] = dataPositions[0].ToString(CultureInfo.InvariantCulture),
            ["seed"] = cfg.Seed.ToString(CultureInfo.InvariantCulture),
            ["skipped"] = skipped.ToString(CultureInfo.InvariantCulture),
            ["model_config"] = trainer.Model.Config.ToJson(),
            ["train_config"] = cfg.ToJson(),
            [ClipModel.ConfigMetadataKey] = trainer.Model.Config.ToJson(),
            [VocabularyRecord.MetadataKey] = tokenizer.Vocabulary.ToJson(),
        };
        if (!double.IsNaN(best)) meta["best"] = best.ToString("R", CultureInfo.InvariantCulture);
        // A resumed run builds its model from model_config; the normalisation a fine-tuned checkpoint declared travels here.
        if (trainer.Model.Normalisation != (ClipImagePreprocessorOptions.ClipMean, ClipImagePreprocessorOptions.ClipStd))
            meta[PreprocessingConfig.MetadataKey] = PreprocessingConfig.ToMetadata(trainer.Model.Normalisation.Mean, trainer.Model.Normalisation.Std);
        if (dataPositions.Length > 1)
        {
            meta["world_size"] = dataPositions.Length.ToString(CultureInfo.InvariantCulture);
            meta["data_positions"] = string.Join(",", dataPositions.Select(p => p.ToString(CultureInfo.InvariantCulture)));
        }
        return (sd, meta);
    }

    /// <summary>
    /// What must agree across ranks for their gradients to add up: everything that shapes a step, the checkpoint cadence
    /// (a collective) and the shape of the data plan; the architecture is compared once the models are built. Paths,
    /// other output settings and worker counts may differ per machine.
    /// </summary>
    private string Fingerprint()
    {
        var text = string.Join("\n", cfg.Model.Config?.ToJsonString() ?? "", JsonSerializer.Serialize(cfg.Optimizer, TrainConfig.JsonOptions),
            JsonSerializer.Serialize(cfg.Schedule, TrainConfig.JsonOptions), JsonSerializer.Serialize(cfg.Loss, TrainConfig.JsonOptions),
            JsonSerializer.Serialize(cfg.Freeze, TrainConfig.JsonOptions), JsonSerializer.Serialize(cfg.Data.Augment, TrainConfig.JsonOptions),
            cfg.Data.BatchSize.ToString(CultureInfo.InvariantCulture), cfg.Seed.ToString(CultureInfo.InvariantCulture),
            cfg.Model.Precision.ToString(), cfg.Model.GradCheckpointing.ToString(), (cfg.Data.MicroBatchSize ?? 0).ToString(CultureInfo.InvariantCulture),
            // The checkpoint cadence decides when every rank joins the data-position gather.
            cfg.Output.CheckpointEvery.ToString(CultureInfo.InvariantCulture),
            // Bucket sizes decide the sequence of all-reduces; local_loss and overlap what the collectives carry.
            JsonSerializer.Serialize(cfg.Distributed, TrainConfig.JsonOptions),
            // The data plan: what each position maps to depends on the sources' sizes and weights and on the vocabulary.
            string.Join(";", sources.Select(x => string.Create(CultureInfo.InvariantCulture, $"{x.Samples.Count}:{x.Weight:R}"))),
            tokenizer.VocabSize.ToString(CultureInfo.InvariantCulture));
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>
    /// Gives every rank rank 0's training state (weights, optimiser moments and step, sigmoid bias, RNG) and the data
    /// positions, through the same serialisation a checkpoint uses, so all ranks start bit-identical.
    /// </summary>
    private (long[] Positions, double Best) ShareStateFromRankZero(Communicator group, ClipTrainer trainer, long[] positions, double best)
    {
        // Through a temporary file in the checkpoint format, streamed in chunks: the state (weights and both AdamW
        // moments) is several GB for the large models.
        string temp = Path.Combine(Path.GetTempPath(), $"clipsharp-rank{group.Rank}-{Environment.ProcessId}-{Guid.NewGuid():N}.safetensors");
        try
        {
            if (group.Rank == 0)
            {
                var (sd, meta) = CheckpointContents(trainer, positions, best, 0);
                meta["world_size"] = group.WorldSize.ToString(CultureInfo.InvariantCulture);
                meta["data_positions"] = string.Join(",", positions.Select(p => p.ToString(CultureInfo.InvariantCulture)));
                using (sd) SafeTensors.Save(temp, sd, meta);
                using var source = File.OpenRead(temp);
                group.BroadcastStream(source, null);
                return (positions, best);
            }
            using (var target = File.Create(temp)) group.BroadcastStream(null, target);
            using var state = CheckpointStore.Load(temp);
            return Restore(state, trainer, group.WorldSize);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static long[] GatherPositions(Communicator group, long mine)
    {
        var all = group.AllGather(BitConverter.GetBytes(mine));
        return Enumerable.Range(0, group.WorldSize).Select(r => BitConverter.ToInt64(all, r * 8)).ToArray();
    }

    /// <inheritdoc />
    public void Dispose() { }
}

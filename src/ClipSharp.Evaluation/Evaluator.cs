using ClipSharp.Data.Readers;
using ClipSharp.Imaging;
using ClipSharp.Modeling;
using ClipSharp.Text;
using ClipSharp.ZeroShot;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Evaluation;

/// <summary>Settings shared by all evaluations of one <see cref="Evaluator"/>.</summary>
public sealed record EvaluatorOptions
{
    /// <summary>The checkpoint the model came from; with <see cref="CacheDirectory"/> it keys the feature cache.</summary>
    public string? CheckpointPath { get; init; }

    /// <summary>Feature cache directory; null disables caching.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>Fingerprint checkpoints by content hash instead of path, size and modification time.</summary>
    public bool HashCheckpoint { get; init; }

    /// <summary>Batching, decoding threads and progress of image encoding.</summary>
    public FeatureExtractionOptions Extraction { get; init; } = new();

    /// <summary>Scale and text batching of zero-shot classifiers.</summary>
    public ZeroShotOptions ZeroShot { get; init; } = new();

    /// <summary>Solver settings of linear probes.</summary>
    public LogisticRegressionOptions Probe { get; init; } = new();

    /// <summary>Receives one-line status messages (cache hits, stale entries, skipped images).</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>Where a dataset's features came from and what was left out.</summary>
/// <param name="Source">Dataset path.</param>
/// <param name="Images">Images encoded.</param>
/// <param name="Skipped">Items left out by the reader or the decoder, with reasons.</param>
/// <param name="Cache">Feature cache outcome.</param>
/// <param name="Seconds">Time spent encoding (0 on a cache hit).</param>
/// <param name="ImagesPerSecond">End-to-end encoding throughput (0 on a cache hit).</param>
public sealed record DatasetSummary(string Source, int Images, IReadOnlyList<SkippedItem> Skipped, string Cache, double Seconds, double ImagesPerSecond)
{
    /// <summary>Number of skipped items.</summary>
    public int SkippedCount => Skipped.Count;
}

/// <summary>Result of a zero-shot classification evaluation.</summary>
public sealed record ZeroShotResult(DatasetSummary Dataset, int Classes, int Templates, float Scale, ClassificationMetrics Metrics);

/// <summary>Result of an image↔text retrieval evaluation.</summary>
public sealed record RetrievalResult(DatasetSummary Dataset, int Texts, RetrievalMetrics Metrics);

/// <summary>Result of a linear-probe evaluation.</summary>
public sealed record LinearProbeEvaluation(DatasetSummary Train, DatasetSummary? Validation, DatasetSummary Test, string ValidationFrom, LinearProbeResult Probe);

/// <summary>One k of a few-shot evaluation.</summary>
/// <param name="K">Examples per class.</param>
/// <param name="Accuracies">Test top-1 per seed.</param>
/// <param name="Mean">Mean over seeds.</param>
/// <param name="StdDev">Population standard deviation over seeds.</param>
/// <param name="ChosenC">C chosen per seed.</param>
public sealed record FewShotPoint(int K, IReadOnlyList<double> Accuracies, double Mean, double StdDev, IReadOnlyList<double> ChosenC);

/// <summary>Result of a few-shot evaluation.</summary>
/// <param name="Train">Training pool summary.</param>
/// <param name="Test">Test set summary.</param>
/// <param name="ZeroShotTop1">Zero-shot accuracy on the same test set.</param>
/// <param name="Points">One entry per k.</param>
/// <param name="Seeds">Seeds used.</param>
/// <param name="ZeroShotMatchedAtK">Smallest k whose mean probe accuracy reaches the zero-shot accuracy, estimated by
/// log-linear interpolation between the evaluated k (the paper's "how many labelled examples is zero-shot worth"); null when none does.</param>
public sealed record FewShotResult(DatasetSummary Train, DatasetSummary Test, double ZeroShotTop1, IReadOnlyList<FewShotPoint> Points, IReadOnlyList<int> Seeds, double? ZeroShotMatchedAtK);

/// <summary>One domain of a robustness evaluation.</summary>
/// <param name="Name">Domain name.</param>
/// <param name="Dataset">Summary of the images scored.</param>
/// <param name="ZeroShotTop1">Zero-shot accuracy.</param>
/// <param name="ProbeTop1">Accuracy of the linear probe trained on the first domain.</param>
/// <param name="Gap">ZeroShotTop1 − ProbeTop1.</param>
/// <param name="ZeroShotDrop">Zero-shot accuracy on the first domain minus on this one.</param>
/// <param name="ProbeDrop">Probe accuracy on the first domain minus on this one.</param>
public sealed record DomainResult(string Name, DatasetSummary Dataset, double ZeroShotTop1, double ProbeTop1, double Gap, double ZeroShotDrop, double ProbeDrop);

/// <summary>Result of a robustness evaluation.</summary>
/// <param name="Domains">Per domain; the first is the probe's training domain, scored on its held-out part.</param>
/// <param name="ProbeC">C chosen for the probe.</param>
/// <param name="ProbeTrainImages">Images the probe was trained on (from the first domain).</param>
/// <param name="MeanShiftZeroShotTop1">Mean zero-shot accuracy over the other domains.</param>
/// <param name="MeanShiftProbeTop1">Mean probe accuracy over the other domains.</param>
public sealed record RobustnessResult(IReadOnlyList<DomainResult> Domains, double ProbeC, int ProbeTrainImages, double MeanShiftZeroShotTop1, double MeanShiftProbeTop1);

/// <summary>Top-k zero-shot labels of one image.</summary>
public sealed record Prediction(string Id, IReadOnlyList<(string Label, double Probability)> Top);

/// <summary>
/// Library entry point of the evaluations: each method encodes (or loads cached) image features and computes one of the
/// paper's / CLIP_benchmark's evaluations. The CLI's <c>clip eval …</c> commands are thin wrappers around these.
/// </summary>
public sealed class Evaluator
{
    readonly ClipModel _model;
    readonly ClipTokenizer _tokenizer;
    readonly ClipImagePreprocessor _pre;
    readonly FeatureCache? _cache;
    string? _checkpointFingerprint;

    /// <summary>Creates an evaluator around a loaded model (put in eval mode here).</summary>
    /// <exception cref="VocabularyMismatchException">The tokenizer's vocabulary does not fit the model: refused here, before any image is encoded.</exception>
    public Evaluator(ClipModel model, ClipTokenizer tokenizer, EvaluatorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        model.CheckVocabulary(tokenizer);
        _model = model;
        _tokenizer = tokenizer;
        Options = options ?? new EvaluatorOptions();
        _model.eval();
        _pre = model.CreatePreprocessor();
        if (Options.CacheDirectory is not null && Options.CheckpointPath is not null) _cache = new FeatureCache(Options.CacheDirectory);
    }

    /// <summary>The settings.</summary>
    public EvaluatorOptions Options { get; }

    string Preprocessing => $"resize-crop={_pre.Size};mean={_pre.Options.Mean};std={_pre.Options.Std};dtype={_model.ComputeType};arch={_model.Config}";

    /// <summary>Encodes a dataset's images, through the cache when enabled.</summary>
    /// <param name="description">Identifies the dataset (and split) in the cache.</param>
    /// <param name="inputs">The images.</param>
    /// <param name="readerSkipped">Items the reader already left out, added to the summary.</param>
    public (ImageFeatures Features, DatasetSummary Summary) Encode(string description, IReadOnlyList<ImageInput> inputs, IReadOnlyList<SkippedItem>? readerSkipped = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        return Encode(description, () => inputs, inputs.Count, () => FeatureCache.FingerprintInputs(inputs), readerSkipped);
    }

    /// <summary>
    /// Encodes images that are enumerated on demand: <paramref name="stream"/> is called once when the features are
    /// computed (not at all on a cache hit) and must yield the same <paramref name="count"/> images in the same order
    /// as the pass that produced <paramref name="fingerprint"/>. This keeps in-memory images (tar shards) out of memory.
    /// </summary>
    public (ImageFeatures Features, DatasetSummary Summary) Encode(string description, Func<IEnumerable<ImageInput>> stream, int count,
        Func<string> fingerprint, IReadOnlyList<SkippedItem>? readerSkipped = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(fingerprint);
        ImageFeatures Compute() => FeatureExtractor.Extract(_model, _pre, stream(), count, Options.Extraction);
        ImageFeatures f;
        CacheOutcome outcome = CacheOutcome.Disabled;
        if (_cache is not null)
        {
            _checkpointFingerprint ??= FeatureCache.FingerprintFile(Options.CheckpointPath!, Options.HashCheckpoint);
            var key = new FeatureCacheKey(Options.CheckpointPath!, _checkpointFingerprint, description, fingerprint(), Preprocessing);
            f = _cache.GetOrCompute(key, Compute, out outcome);
            if (outcome == CacheOutcome.Hit) Options.Log?.Invoke($"features of {description}: loaded from cache ({f.Count} images)");
            if (outcome == CacheOutcome.Stale) Options.Log?.Invoke($"features of {description}: cache entry was stale ({_cache.LastStaleReason}); recomputed");
        }
        else f = Compute();
        var skipped = (readerSkipped ?? []).Concat(f.Skipped).ToList();
        foreach (var s in f.Skipped) Options.Log?.Invoke($"skipped {s.Id}: {s.Reason}");
        double rate = f.Seconds > 0 ? (f.Count + f.Skipped.Count) / f.Seconds : 0;
        return (f, new DatasetSummary(description, f.Count, skipped, outcome.ToString().ToLowerInvariant(), f.Seconds, rate));
    }

    /// <summary>
    /// One pass over a dataset that keeps what <paramref name="keep"/> extracts from each item (labels, captions) and
    /// the inputs without their image bytes; the fingerprint is computed on the way. When some items carried bytes
    /// (tar shards), the images are read again, streaming, when the features are computed; otherwise the paths are used.
    /// The reader's skip log is read after the first pass, so a second pass does not count an item twice.
    /// </summary>
    (ImageFeatures Features, List<T> Kept, DatasetSummary Summary) EncodeStreaming<TItem, T>(string description, Func<IEnumerable<TItem>> items,
        Func<TItem, ImageInput> input, Func<TItem, T> keep, SkipLog readerLog)
    {
        var kept = new List<T>();
        var light = new List<ImageInput>();
        bool anyBytes = false;
        string? print = null;
        IEnumerable<ImageInput> FirstPass()
        {
            foreach (var item in items())
            {
                var x = input(item);
                kept.Add(keep(item));
                anyBytes |= x.Bytes is not null;
                light.Add(x with { Bytes = null });
                yield return x;
            }
        }
        print = FeatureCache.FingerprintInputs(FirstPass());
        var readerSkipped = readerLog.Items;
        IEnumerable<ImageInput> Stream() => anyBytes ? items().Select(input) : light;
        var (f, summary) = Encode(description, Stream, light.Count, () => print, readerSkipped);
        return (f, kept, summary);
    }

    /// <summary>Encodes a labelled dataset; returns features and the label of each row.</summary>
    public (ImageFeatures Features, int[] Labels, DatasetSummary Summary) EncodeLabeled(ILabeledImageDataset data, string? description = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var (f, labels, summary) = EncodeStreaming(description ?? FullSource(data.Source), data.Images, ImageInput.From, x => x.Label, data.Skipped);
        return (f, f.SourceIndex.Select(i => labels[i]).ToArray(), summary);
    }

    /// <summary>Builds a zero-shot classifier with this evaluator's model, tokenizer and options.</summary>
    public ZeroShotClassifier Classifier(IReadOnlyList<string> classNames, IReadOnlyList<string> templates) =>
        ZeroShotClassifier.Create(_model, _tokenizer, classNames, templates, Options.ZeroShot);

    static ClassificationMetrics Score(ZeroShotClassifier clf, ImageFeatures f, IReadOnlyList<int> labels)
    {
        using var scope = NewDisposeScope();
        var logits = clf.Logits(f.ToTensor()).contiguous();
        return ClassificationMetrics.Compute(logits.data<float>().ToArray(), labels, clf.ClassNames);
    }

    /// <summary>Zero-shot classification: top-1, top-5, mean per-class recall, per-class table and confusion matrix.</summary>
    /// <param name="data">Labelled images.</param>
    /// <param name="templates">Prompt templates.</param>
    /// <param name="classNames">Names used in the prompts (default: the dataset's); must have one per class.</param>
    public ZeroShotResult ZeroShot(ILabeledImageDataset data, IReadOnlyList<string> templates, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var names = CheckNames(data, classNames);
        var (f, labels, summary) = EncodeLabeled(data);
        using var clf = Classifier(names, templates);
        return new ZeroShotResult(summary, names.Count, templates.Count, clf.Scale, Score(clf, f, labels));
    }

    static IReadOnlyList<string> CheckNames(ILabeledImageDataset data, IReadOnlyList<string>? classNames)
    {
        var names = classNames ?? data.ClassNames;
        if (names.Count != data.ClassNames.Count)
            throw new ClipSharpException($"{data.Source} has {data.ClassNames.Count} classes but {names.Count} class names were given");
        if (names.Count < 2) throw new ClipSharpException($"{data.Source}: need at least two classes, found {names.Count}");
        return names;
    }

    /// <summary>Image↔text retrieval with every caption of every image.</summary>
    public RetrievalResult Retrieval(IImageTextDataset data, IReadOnlyList<int>? ks = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var (f, captions, summary) = EncodeStreaming(FullSource(data.Source), data.Pairs, ImageInput.From, x => x.Captions, data.Skipped);
        var texts = new List<string>();
        var textToImage = new List<int>();
        for (int row = 0; row < f.Count; row++)
            foreach (var caption in captions[f.SourceIndex[row]]) { texts.Add(caption); textToImage.Add(row); }
        if (texts.Count == 0) throw new ClipSharpException($"{data.Source}: no image with a caption could be read");
        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        var txt = ZeroShotClassifier.EncodeTexts(_model, _tokenizer, texts, Options.ZeroShot.TextBatchSize);
        var metrics = RetrievalScoring.Compute(f.ToTensor(), txt, textToImage, ks);
        return new RetrievalResult(summary, texts.Count, metrics);
    }

    /// <summary>Linear probe on frozen features: C chosen on validation data (a given split, or a stratified fraction of
    /// train), refit on train+val, scored on test.</summary>
    public LinearProbeEvaluation LinearProbe(ILabeledImageDataset train, ILabeledImageDataset test, ILabeledImageDataset? validation = null,
        double validationFraction = 0.2, int seed = 0, double? fixedC = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        CheckSameClasses(train, test);
        var (trF, trY, trS) = EncodeLabeled(train, FullSource(train.Source) + "#train");
        var (teF, teY, teS) = EncodeLabeled(test, FullSource(test.Source) + "#test");
        using var scope = NewDisposeScope();
        ImageFeatures fitF, valF;
        int[] fitY, valY;
        DatasetSummary? vaS = null;
        string from;
        if (validation is not null)
        {
            CheckSameClasses(train, validation);
            ImageFeatures vf; int[] vy;
            (vf, vy, vaS) = EncodeLabeled(validation, FullSource(validation.Source) + "#val");
            (fitF, fitY, valF, valY) = (trF, trY, vf, vy);
            from = "validation dataset";
        }
        else
        {
            var (a, b) = Evaluation.LinearProbe.StratifiedSplit(trY, validationFraction, seed);
            (fitF, fitY, valF, valY) = (trF.Select(a), a.Select(i => trY[i]).ToArray(), trF.Select(b), b.Select(i => trY[i]).ToArray());
            from = $"{validationFraction:0.##} of train (stratified, seed {seed})";
        }
        var result = Evaluation.LinearProbe.Run(fitF.ToTensor(), fitY, valF.ToTensor(), valY, teF.ToTensor(), teY, train.ClassNames, Options.Probe, fixedC);
        return new LinearProbeEvaluation(trS, vaS, teS, from, result);
    }

    /// <summary>The absolute path of an existing file or folder (so the cache slot does not depend on the working directory), else the text as given.</summary>
    static string FullSource(string source) => File.Exists(source) || Directory.Exists(source) ? Path.GetFullPath(source) : source;

    static void CheckSameClasses(ILabeledImageDataset a, ILabeledImageDataset b)
    {
        if (!a.ClassNames.SequenceEqual(b.ClassNames))
            throw new ClipSharpException($"{a.Source} and {b.Source} have different classes ({a.ClassNames.Count} vs {b.ClassNames.Count}; all splits must share one class list)");
    }

    /// <summary>Few-shot linear probes: for each k and seed, k training images per class, C chosen on a held-out
    /// validation part of the training pool (or fixed), scored on test; compared with zero-shot on the same test set.</summary>
    public FewShotResult FewShot(ILabeledImageDataset train, ILabeledImageDataset test, IReadOnlyList<int> ks, IReadOnlyList<int> seeds,
        IReadOnlyList<string> templates, IReadOnlyList<string>? classNames = null, double validationFraction = 0.2, double? fixedC = null)
    {
        ArgumentNullException.ThrowIfNull(ks);
        ArgumentNullException.ThrowIfNull(seeds);
        CheckSameClasses(train, test);
        var names = CheckNames(train, classNames);
        var (trF, trY, trS) = EncodeLabeled(train, FullSource(train.Source) + "#train");
        var (teF, teY, teS) = EncodeLabeled(test, FullSource(test.Source) + "#test");
        double zs;
        using (var clf = Classifier(names, templates)) zs = Score(clf, teF, teY).Top1;
        var points = new List<FewShotPoint>();
        using var scope = NewDisposeScope();
        var testX = teF.ToTensor();
        foreach (var k in ks.Distinct().Order())
        {
            var accs = new List<double>();
            var cs = new List<double>();
            foreach (var seed in seeds)
            {
                int[] pool, val;
                if (fixedC is null) (pool, val) = Evaluation.LinearProbe.StratifiedSplit(trY, validationFraction, seed);
                else (pool, val) = (Enumerable.Range(0, trY.Length).ToArray(), []);
                var poolY = pool.Select(i => trY[i]).ToArray();
                var shot = FewShotSampler.Sample(poolY, k, seed).Select(i => pool[i]).ToArray();
                var shotX = trF.Select(shot).ToTensor();
                var shotY = shot.Select(i => trY[i]).ToArray();
                double c;
                if (fixedC is double fc) c = fc;
                else c = Evaluation.LinearProbe.SweepC(shotX, shotY, trF.Select(val).ToTensor(), val.Select(i => trY[i]).ToArray(), train.ClassNames.Count, Options.Probe).BestC;
                var model = LogisticRegression.Fit(shotX, shotY, train.ClassNames.Count, c, Options.Probe);
                accs.Add(model.Accuracy(testX, teY));
                cs.Add(c);
            }
            double mean = accs.Average();
            points.Add(new FewShotPoint(k, accs, mean, Math.Sqrt(accs.Average(a => (a - mean) * (a - mean))), cs));
            Options.Log?.Invoke($"{k}-shot: {100 * mean:0.00}% (zero-shot {100 * zs:0.00}%)");
        }
        return new FewShotResult(trS, teS, zs, points, seeds, MatchedAt(points, zs));
    }

    static double? MatchedAt(IReadOnlyList<FewShotPoint> points, double zeroShot)
    {
        for (int i = 0; i < points.Count; i++)
        {
            if (points[i].Mean < zeroShot) continue;
            if (i == 0) return points[0].K;
            var (a, b) = (points[i - 1], points[i]);
            double t = (zeroShot - a.Mean) / (b.Mean - a.Mean);
            return Math.Pow(2, Math.Log2(a.K) + t * (Math.Log2(b.K) - Math.Log2(a.K)));
        }
        return null;
    }

    /// <summary>Robustness to distribution shift: one class set, several domains. Zero-shot accuracy per domain, and a
    /// linear probe trained on part of the first domain (the rest is its test part), scored on every domain.</summary>
    public RobustnessResult Robustness(IReadOnlyList<(string Name, ILabeledImageDataset Data)> domains, IReadOnlyList<string> templates,
        IReadOnlyList<string>? classNames = null, double testFraction = 0.5, double validationFraction = 0.2, int seed = 0, double? fixedC = null)
    {
        ArgumentNullException.ThrowIfNull(domains);
        if (domains.Count < 2) throw new ArgumentException("robustness needs at least two domains");
        var first = domains[0].Data;
        foreach (var d in domains.Skip(1)) CheckSameClasses(first, d.Data);
        var names = CheckNames(first, classNames);
        using var clf = Classifier(names, templates);
        var encoded = domains.Select(d => (d.Name, Enc: EncodeLabeled(d.Data, FullSource(d.Data.Source) + "#domain"))).ToList();

        var (f0, y0, s0) = encoded[0].Enc;
        var (trainIdx, testIdx) = Evaluation.LinearProbe.StratifiedSplit(y0, testFraction, seed);
        var (fitIdx, valIdx) = Evaluation.LinearProbe.StratifiedSplit(trainIdx.Select(i => y0[i]).ToArray(), validationFraction, seed);
        fitIdx = fitIdx.Select(i => trainIdx[i]).ToArray();
        valIdx = valIdx.Select(i => trainIdx[i]).ToArray();
        using var scope = NewDisposeScope();
        int classes = first.ClassNames.Count;
        double c = fixedC ?? Evaluation.LinearProbe.SweepC(f0.Select(fitIdx).ToTensor(), fitIdx.Select(i => y0[i]).ToArray(),
            f0.Select(valIdx).ToTensor(), valIdx.Select(i => y0[i]).ToArray(), classes, Options.Probe).BestC;
        var probe = LogisticRegression.Fit(f0.Select(trainIdx).ToTensor(), trainIdx.Select(i => y0[i]).ToArray(), classes, c, Options.Probe);

        var rows = new List<(string Name, DatasetSummary S, double Zs, double Pr)>();
        for (int d = 0; d < encoded.Count; d++)
        {
            var (f, y, s) = encoded[d].Enc;
            if (d == 0) { f = f.Select(testIdx); y = testIdx.Select(i => y0[i]).ToArray(); s = s with { Source = s.Source + " (held-out part)", Images = testIdx.Length }; }
            rows.Add((encoded[d].Name, s, Score(clf, f, y).Top1, probe.Accuracy(f.ToTensor(), y)));
        }
        var result = rows.Select(r => new DomainResult(r.Name, r.S, r.Zs, r.Pr, r.Zs - r.Pr, rows[0].Zs - r.Zs, rows[0].Pr - r.Pr)).ToList();
        var shifted = result.Skip(1).ToList();
        return new RobustnessResult(result, c, trainIdx.Length, shifted.Average(r => r.ZeroShotTop1), shifted.Average(r => r.ProbeTop1));
    }

    /// <summary>Top-k zero-shot labels and probabilities for each image (skipped images are reported in the summary).</summary>
    public (IReadOnlyList<Prediction> Predictions, DatasetSummary Summary) Predict(IReadOnlyList<ImageInput> images, ZeroShotClassifier classifier, int k, string description)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        var (f, summary) = Encode(description, images);
        using var scope = NewDisposeScope();
        var probs = classifier.Probabilities(f.ToTensor());
        k = Math.Min(k, classifier.NumClasses);
        var (values, indices) = probs.topk(k, 1);
        var v = values.contiguous().data<float>().ToArray();
        var ix = indices.contiguous().data<long>().ToArray();
        var list = new List<Prediction>(f.Count);
        for (int i = 0; i < f.Count; i++)
            list.Add(new Prediction(f.Ids[i], Enumerable.Range(0, k).Select(j => (classifier.ClassNames[(int)ix[i * k + j]], (double)v[i * k + j])).ToList()));
        return (list, summary);
    }
}

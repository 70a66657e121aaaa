using ClipSharp.Evaluation;
using ClipSharp.Imaging;
using ClipSharp.Modeling;
using ClipSharp.Text;
using ClipSharp.Training.Data;
using ClipSharp.ZeroShot;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Training;

/// <summary>
/// Validation during training: paired retrieval R@1 (both directions) and the contrastive loss on held-out
/// pairs, and zero-shot top-1 on a class-folder split (prompt-averaged class embeddings). Images are decoded and
/// centre-cropped once and kept in memory, so each evaluation only runs the model.
/// </summary>
internal sealed class Validator
{
    private readonly float[]? valPixels;
    private readonly long[]? valIds;
    private readonly int valCount;
    private readonly float[]? zsPixels;
    private readonly int[]? zsLabels;
    private readonly long[]? zsPromptIds;
    private readonly int zsClasses, zsTemplates;
    private readonly IReadOnlyList<string>? zsClassNames;
    private readonly int size, ctx;

    /// <summary>Prepares the validation data (bad images are left out).</summary>
    public Validator(ClipTokenizer tokenizer, int imageSize, int contextLength, int? foldVocab,
        PairSource? pairs, int pairLimit, ZeroShotSection? zeroShot, string baseDirectory,
        ((float R, float G, float B) Mean, (float R, float G, float B) Std)? normalisation = null)
    {
        size = imageSize;
        ctx = contextLength;
        var (mean, std) = normalisation ?? (ClipImagePreprocessorOptions.ClipMean, ClipImagePreprocessorOptions.ClipStd);
        var pre = new ClipImagePreprocessor(new ClipImagePreprocessorOptions { Size = imageSize, Mean = mean, Std = std });
        int[] Tok(string text)
        {
            var t = tokenizer.Tokenize(text, contextLength, truncate: true);
            if (foldVocab is int v) TokenRemap.Fold(t, v, tokenizer.StartOfTextId, tokenizer.EndOfTextId);
            return t;
        }
        if (pairs is not null)
        {
            var chosen = pairs.Samples.Take(pairLimit).ToList();
            var px = new float[chosen.Count][];
            Parallel.For(0, chosen.Count, i =>
            {
                try
                {
                    var s = chosen[i];
                    px[i] = s.ImageBytes is not null ? pre.Process(s.ImageBytes, s.Id) : pre.Process(s.ImagePath!);
                }
                catch (Exception e) when (e is IOException or InvalidDataException or ClipSharpException or ArgumentException) { }
            });
            var keep = Enumerable.Range(0, chosen.Count).Where(i => px[i] is not null).ToList();
            valCount = keep.Count;
            valPixels = keep.SelectMany(i => px[i]).ToArray();
            valIds = keep.SelectMany(i => Tok(chosen[i].Captions[0]).Select(x => (long)x)).ToArray();
        }
        if (zeroShot is not null)
        {
            string root = Path.IsPathRooted(zeroShot.Path) ? zeroShot.Path : Path.GetFullPath(Path.Combine(baseDirectory, zeroShot.Path));
            var folder = new ClipSharp.Data.Readers.ImageFolderDataset(root);
            var classes = folder.ClassNames;
            var images = folder.Images().GroupBy(x => x.Label).SelectMany(g => g.Take(zeroShot.PerClassLimit))
                .Select(x => (Path: x.ImagePath!, x.Label)).ToList();
            var px = new float[images.Count][];
            Parallel.For(0, images.Count, i =>
            {
                try { px[i] = pre.Process(images[i].Path); }
                catch (Exception e) when (e is IOException or InvalidDataException or ClipSharpException or ArgumentException) { }
            });
            var keep = Enumerable.Range(0, images.Count).Where(i => px[i] is not null).ToList();
            zsPixels = keep.SelectMany(i => px[i]).ToArray();
            zsLabels = keep.Select(i => images[i].Label).ToArray();
            zsClasses = classes.Count;
            zsClassNames = classes;
            zsTemplates = zeroShot.Templates.Count;
            zsPromptIds = classes.SelectMany(c => zeroShot.Templates.SelectMany(t => Tok(ZeroShot.PromptSets.Fill(t, c)).Select(x => (long)x))).ToArray();
        }
    }

    /// <summary>True when there is anything to evaluate.</summary>
    public bool HasWork => valCount > 0 || zsLabels is { Length: > 0 };

    /// <summary>Evaluates the model (eval mode, no autograd) and returns "val/…" metrics; the model's mode is restored.</summary>
    public Dictionary<string, double> Evaluate(ClipModel model)
    {
        var result = new Dictionary<string, double>();
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var _ = torch.no_grad();
            using var scope = NewDisposeScope();
            if (valCount > 0)
            {
                var img = EncodeImages(model, valPixels!, valCount);
                var txt = EncodeTexts(model, valIds!, valCount);
                var (i2t, t2i) = RetrievalScoring.PairedRecallAt1(img, txt);
                result["val/i2t_r1"] = i2t;
                result["val/t2i_r1"] = t2i;
                result["val/loss"] = ContrastiveLoss.Symmetric(img, txt, model.LogitScale).item<float>();
            }
            if (zsLabels is { Length: > 0 })
            {
                var img = EncodeImages(model, zsPixels!, zsLabels.Length);
                var txt = EncodeTexts(model, zsPromptIds!, zsClasses * zsTemplates);
                result["val/zeroshot_top1"] = ZeroShotTop1(img, txt.view(zsClasses, zsTemplates, -1), zsLabels, zsClassNames!);
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
        return result;
    }

    /// <summary>
    /// Zero-shot top-1 as <c>clip eval zeroshot</c> scores it: the evaluation's prompt ensemble
    /// (<see cref="ZeroShotClassifier.EnsembleWeights"/>), its logits and <see cref="ClassificationMetrics"/>.
    /// </summary>
    /// <param name="imageFeatures">[N, E] image features.</param>
    /// <param name="promptFeatures">[C, T, E] text features of every class × template prompt.</param>
    /// <param name="labels">N labels.</param>
    /// <param name="classNames">C names.</param>
    internal static double ZeroShotTop1(Tensor imageFeatures, Tensor promptFeatures, IReadOnlyList<int> labels, IReadOnlyList<string> classNames)
    {
        using var scope = NewDisposeScope();
        using var classifier = new ZeroShotClassifier(classNames, [], ZeroShotClassifier.EnsembleWeights(promptFeatures.detach()), 1f);
        var logits = classifier.Logits(imageFeatures.detach()).contiguous();
        return ClassificationMetrics.Compute(logits.data<float>().ToArray(), labels, classNames).Top1;
    }

    private Tensor EncodeImages(ClipModel model, float[] pixels, int n)
    {
        var parts = new List<Tensor>();
        int per = 3 * size * size;
        for (int i = 0; i < n; i += 64)
        {
            int m = Math.Min(64, n - i);
            using var x = torch.tensor(pixels.AsSpan(i * per, m * per).ToArray(), [m, 3, size, size]);
            parts.Add(model.EncodeImage(x));
        }
        return torch.cat(parts, 0);
    }

    private Tensor EncodeTexts(ClipModel model, long[] ids, int n)
    {
        var parts = new List<Tensor>();
        for (int i = 0; i < n; i += 128)
        {
            int m = Math.Min(128, n - i);
            using var x = torch.tensor(ids.AsSpan(i * ctx, m * ctx).ToArray(), [m, ctx]);
            parts.Add(model.EncodeText(x));
        }
        return torch.cat(parts, 0);
    }
}

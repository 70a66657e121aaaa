using ClipSharp.Imaging;
using ClipSharp.Modeling;
using ClipSharp.Search;
using ClipSharp.Text;
using ClipSharp.ZeroShot;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Server;

/// <summary>
/// One loaded model and its tokenizer, turning queries into normalised embeddings. Forward passes are run one at a time
/// (libtorch already spreads each over the cores); decoding and preprocessing an upload happen outside that lock.
/// </summary>
internal sealed class QueryEncoder : IDisposable
{
    readonly ClipModel model;
    readonly ClipTokenizer tokenizer;
    readonly ClipImagePreprocessor preprocessor;
    // One forward at a time; waiters wait asynchronously, so that queued requests hold no thread-pool threads.
    readonly SemaphoreSlim forward = new(1, 1);

    public QueryEncoder(ClipModel model, ClipTokenizer tokenizer, string checkpoint, long maxImagePixels)
    {
        this.model = model;
        this.tokenizer = tokenizer;
        Checkpoint = checkpoint;
        var p = model.CreatePreprocessor();
        preprocessor = new ClipImagePreprocessor(p.Options with { MaxImagePixels = maxImagePixels });
        Fingerprint = ImageIndex.Fingerprint(model);
        using var scope = NewDisposeScope();
        LogitScale = MathF.Exp(model.LogitScale.to(ScalarType.Float32).item<float>());
    }

    /// <summary>The checkpoint file the model came from.</summary>
    public string Checkpoint { get; }

    /// <summary><see cref="ImageIndex.Fingerprint"/> of the model.</summary>
    public string Fingerprint { get; }

    /// <summary>exp(logit_scale): the temperature of zero-shot probabilities.</summary>
    public float LogitScale { get; }

    public long Dim => model.Config.EmbedDim;

    /// <summary>Normalised text embeddings, one row per text.</summary>
    public async Task<float[][]> EmbedTexts(IReadOnlyList<string> texts, CancellationToken ct = default)
    {
        await forward.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            using var scope = NewDisposeScope();
            var f = nn.functional.normalize(model.EncodeTexts(texts, tokenizer), p: 2, dim: 1).contiguous();
            return Rows(f);
        }
        finally { forward.Release(); }
    }

    /// <summary>The normalised embedding of an encoded image (JPEG, PNG, WebP, GIF, BMP).</summary>
    /// <exception cref="ImageDecodeException">Not a decodable image, or larger than the pixel limit.</exception>
    public async Task<float[]> EmbedImage(byte[] encoded, CancellationToken ct = default)
    {
        var chw = preprocessor.Process(encoded, "upload");
        await forward.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            using var scope = NewDisposeScope();
            using var _ = torch.inference_mode();
            var pixels = torch.tensor(chw, [1, 3, preprocessor.Size, preprocessor.Size]);
            var f = nn.functional.normalize(model.EncodeImage(pixels), p: 2, dim: 1).contiguous();
            return Rows(f)[0];
        }
        finally { forward.Release(); }
    }

    /// <summary>Zero-shot: softmax over the labels (each filled into <paramref name="template"/>) of the scaled cosine similarities.</summary>
    public async Task<float[]> Classify(float[] image, IReadOnlyList<string> labels, string? template, CancellationToken ct = default)
    {
        var prompts = labels.Select(l => template is null ? l : PromptSets.Fill(template, l)).ToList();
        var texts = await EmbedTexts(prompts, ct).ConfigureAwait(false);
        var logits = new double[texts.Length];
        for (int i = 0; i < texts.Length; i++) logits[i] = LogitScale * Dot(image, texts[i]);
        double max = logits.Max(), sum = 0;
        for (int i = 0; i < logits.Length; i++) sum += logits[i] = Math.Exp(logits[i] - max);
        return logits.Select(v => (float)(v / sum)).ToArray();
    }

    static double Dot(float[] a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }

    static float[][] Rows(Tensor f)
    {
        int n = (int)f.shape[0], d = (int)f.shape[1];
        var flat = f.data<float>().ToArray();
        var rows = new float[n][];
        for (int i = 0; i < n; i++) rows[i] = flat.AsSpan(i * d, d).ToArray();
        return rows;
    }

    public void Dispose()
    {
        model.Dispose();
        forward.Dispose();
    }
}

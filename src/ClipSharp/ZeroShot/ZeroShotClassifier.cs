using ClipSharp.Modeling;
using ClipSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.ZeroShot;

/// <summary>How <see cref="ZeroShotClassifier.Create"/> builds and scores.</summary>
public sealed record ZeroShotOptions
{
    /// <summary>Multiplier of the cosine similarities (the paper's 100). Ignored when <see cref="UseModelLogitScale"/> is set.</summary>
    public float Scale { get; init; } = 100f;

    /// <summary>Use the model's own learned temperature exp(logit_scale) instead of <see cref="Scale"/>.</summary>
    public bool UseModelLogitScale { get; init; }

    /// <summary>Prompts encoded per forward pass of the text tower.</summary>
    public int TextBatchSize { get; init; } = 256;
}

/// <summary>
/// A zero-shot linear classifier built from class names and prompt templates (prompt ensembling): every class × template
/// prompt is tokenized and encoded, each prompt embedding is L2-normalised, the embeddings of one class are averaged,
/// and the average is normalised again. Logits are scale · normalised image embedding · class weights.
/// </summary>
public sealed class ZeroShotClassifier : IDisposable
{
    /// <summary>Wraps ready-made class weights.</summary>
    /// <param name="classNames">One name per row of <paramref name="weights"/>.</param>
    /// <param name="templates">The templates the weights were built from (for reports).</param>
    /// <param name="weights">[C, E] float32, rows L2-normalised; the classifier takes ownership.</param>
    /// <param name="scale">Multiplier of the cosine similarities.</param>
    public ZeroShotClassifier(IReadOnlyList<string> classNames, IReadOnlyList<string> templates, Tensor weights, float scale)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        ArgumentNullException.ThrowIfNull(weights);
        if (weights.dim() != 2 || weights.shape[0] != classNames.Count)
            throw new ArgumentException($"weights must be [{classNames.Count}, E], got [{string.Join(", ", weights.shape)}]");
        ClassNames = classNames;
        Templates = templates ?? [];
        Weights = weights.to(ScalarType.Float32).detach().DetachFromDisposeScope();
        Scale = scale;
    }

    /// <summary>Class names, in class-index order.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Templates used for the ensemble.</summary>
    public IReadOnlyList<string> Templates { get; }

    /// <summary>Class weights [C, E], float32, each row of unit length.</summary>
    public Tensor Weights { get; }

    /// <summary>Multiplier applied to cosine similarities.</summary>
    public float Scale { get; }

    /// <summary>Number of classes.</summary>
    public int NumClasses => ClassNames.Count;

    /// <summary>Builds the classifier by encoding every class × template prompt with the model's text tower.</summary>
    /// <param name="model">The CLIP model (its mode is not changed; call <c>eval()</c> first).</param>
    /// <param name="tokenizer">The CLIP tokenizer.</param>
    /// <param name="classNames">Class names, in label order.</param>
    /// <param name="templates">Templates with a <c>{}</c> placeholder.</param>
    /// <param name="options">Scale and batching; defaults when null.</param>
    public static ZeroShotClassifier Create(ClipModel model, ClipTokenizer tokenizer, IReadOnlyList<string> classNames,
        IReadOnlyList<string> templates, ZeroShotOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(classNames);
        ArgumentNullException.ThrowIfNull(templates);
        if (classNames.Count == 0) throw new ArgumentException("no class names");
        if (templates.Count == 0) throw new ArgumentException("no templates");
        options ??= new ZeroShotOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.TextBatchSize, 1);

        var prompts = new List<string>(classNames.Count * templates.Count);
        foreach (var c in classNames)
            foreach (var t in templates)
                prompts.Add(PromptSets.Fill(t, c));

        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        var embeddings = EncodeTexts(model, tokenizer, prompts, options.TextBatchSize);
        var perClass = embeddings.reshape(classNames.Count, templates.Count, embeddings.shape[1]);
        var weights = EnsembleWeights(perClass);
        float scale = options.UseModelLogitScale ? (float)model.LogitScale.detach().exp().item<float>() : options.Scale;
        return new ZeroShotClassifier(classNames, templates, weights.MoveToOuterDisposeScope(), scale);
    }

    /// <summary>Encodes texts with the model's text tower in batches; returns raw (unnormalised) features [N, E].</summary>
    public static Tensor EncodeTexts(ClipModel model, ClipTokenizer tokenizer, IReadOnlyList<string> texts, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(texts);
        model.CheckVocabulary(tokenizer);
        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        var parts = new List<Tensor>();
        int ctx = model.Config.ContextLength;
        for (int i = 0; i < texts.Count; i += batchSize)
        {
            var chunk = texts.Skip(i).Take(Math.Min(batchSize, texts.Count - i)).ToList();
            using var ids = tokenizer.ToTensor(chunk, ctx, truncate: true);
            parts.Add(model.EncodeText(ids));
        }
        var all = parts.Count == 1 ? parts[0] : torch.cat(parts, 0);
        return all.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Prompt ensembling on already-encoded prompts: normalise each prompt embedding, average over templates, normalise the mean.
    /// </summary>
    /// <param name="promptEmbeddings">[C, T, E]: class × template × embedding.</param>
    /// <returns>[C, E] unit-length class weights (float32).</returns>
    public static Tensor EnsembleWeights(Tensor promptEmbeddings)
    {
        ArgumentNullException.ThrowIfNull(promptEmbeddings);
        if (promptEmbeddings.dim() != 3) throw new ArgumentException("prompt embeddings must be [classes, templates, dim]");
        using var scope = NewDisposeScope();
        var e = promptEmbeddings.to(ScalarType.Float32);
        e = e / e.norm(-1, keepdim: true);
        var mean = e.mean([1]);
        return (mean / mean.norm(-1, keepdim: true)).MoveToOuterDisposeScope();
    }

    /// <summary>Logits [N, C] = scale · normalise(imageFeatures) · Weightsᵀ.</summary>
    /// <param name="imageFeatures">[N, E] raw or normalised image features.</param>
    public Tensor Logits(Tensor imageFeatures)
    {
        ArgumentNullException.ThrowIfNull(imageFeatures);
        using var scope = NewDisposeScope();
        using Scalar scale = Scale.ToScalar();
        var img = imageFeatures.to(ScalarType.Float32);
        img = img / img.norm(-1, keepdim: true);
        return img.matmul(Weights.t()).mul(scale).MoveToOuterDisposeScope();
    }

    /// <summary>Softmax of <see cref="Logits"/> over classes.</summary>
    public Tensor Probabilities(Tensor imageFeatures)
    {
        using var scope = NewDisposeScope();
        return Logits(imageFeatures).softmax(-1).MoveToOuterDisposeScope();
    }

    /// <summary>Disposes the weights.</summary>
    public void Dispose() => Weights.Dispose();
}

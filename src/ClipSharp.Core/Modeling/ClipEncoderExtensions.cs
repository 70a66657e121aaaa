using System.Runtime.ExceptionServices;
using ClipSharp.Imaging;
using ClipSharp.Modeling;
using ClipSharp.Text;

namespace ClipSharp;

/// <summary>
/// Files and strings to embeddings and label probabilities over any <see cref="IClipEncoder"/> backend: images decoded
/// and preprocessed in parallel into one batch buffer, texts tokenized in batches, features L2-normalised.
/// </summary>
public static class ClipEncoderExtensions
{
    /// <summary>Unit-length embeddings of image files, in order, in batches.</summary>
    /// <param name="encoder">The model.</param>
    /// <param name="imagePaths">Image files (enumerated one batch at a time).</param>
    /// <param name="preprocessor">Preprocessing; null for the encoder's declared <see cref="IClipEncoder.Preprocessing"/>.</param>
    /// <param name="batchSize">Images per forward pass.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    /// <exception cref="ImageDecodeException">A file is not a decodable image (the first failing one in order is named).</exception>
    public static float[][] EmbedImages(this IClipEncoder encoder, IEnumerable<string> imagePaths, ClipImagePreprocessor? preprocessor = null,
        int batchSize = 32, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(imagePaths);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        preprocessor ??= new ClipImagePreprocessor(encoder.Preprocessing);
        if (preprocessor.Size != encoder.Preprocessing.Size)
            throw new ArgumentException($"preprocessing size {preprocessor.Size} does not match the model's input size {encoder.Preprocessing.Size}", nameof(preprocessor));
        var rows = new List<float[]>();
        int per = preprocessor.OutputLength;
        foreach (var batch in imagePaths.Chunk(batchSize))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var pixels = new float[(long)batch.Length * per];
            var errors = new Exception?[batch.Length];
            Parallel.For(0, batch.Length, new ParallelOptions { CancellationToken = cancellationToken }, i =>
            {
                try { preprocessor.ProcessInto(batch[i], pixels.AsSpan(i * per, per)); }
                catch (Exception e) { errors[i] = e; }
            });
            foreach (var e in errors)
                if (e is not null) ExceptionDispatchInfo.Capture(e).Throw();
            rows.AddRange(UnitRows(encoder.EncodeImages(pixels, batch.Length), batch.Length, encoder.EmbedDim));
        }
        return [.. rows];
    }

    /// <summary>Unit-length embeddings of texts, in order, in batches (over-long texts truncated to the context length, as the reference <c>tokenize(truncate=True)</c>).</summary>
    /// <param name="encoder">The model.</param>
    /// <param name="texts">The texts.</param>
    /// <param name="tokenizer">The model's tokenizer (its vocabulary size must equal the text tower's).</param>
    /// <param name="batchSize">Texts per forward pass.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    /// <exception cref="VocabularyMismatchException">The tokenizer does not fit the model.</exception>
    public static float[][] EmbedTexts(this IClipEncoder encoder, IEnumerable<string> texts, ClipTokenizer tokenizer, int batchSize = 32,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (tokenizer.VocabSize != encoder.Config.VocabSize)
            throw new VocabularyMismatchException(null, encoder.Config.VocabSize, tokenizer);
        int ctx = encoder.Config.ContextLength;
        var rows = new List<float[]>();
        foreach (var batch in texts.Chunk(batchSize))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var ids = tokenizer.TokenizeBatch(batch, ctx, truncate: true);
            var flat = new long[(long)batch.Length * ctx];
            for (int i = 0; i < batch.Length; i++)
                for (int j = 0; j < ctx; j++) flat[i * ctx + j] = ids[i, j];
            rows.AddRange(UnitRows(encoder.EncodeTexts(flat, batch.Length), batch.Length, encoder.EmbedDim));
        }
        return [.. rows];
    }

    /// <summary>
    /// The probability of each label for an image: the softmax over the labels of the model's scaled cosine
    /// similarities (<see cref="IClipEncoder.LogitScale"/>), highest first; labels are used as written.
    /// </summary>
    /// <param name="encoder">The model.</param>
    /// <param name="imagePath">An image file.</param>
    /// <param name="labels">Candidate texts, at least one.</param>
    /// <param name="tokenizer">The model's tokenizer.</param>
    /// <param name="preprocessor">Preprocessing; null for the encoder's declared one.</param>
    public static IReadOnlyList<LabelProbability> Classify(this IClipEncoder encoder, string imagePath, IReadOnlyList<string> labels,
        ClipTokenizer tokenizer, ClipImagePreprocessor? preprocessor = null)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.Count == 0) throw new ArgumentException("At least one label is needed.", nameof(labels));
        var image = encoder.EmbedImages([imagePath], preprocessor)[0];
        var texts = encoder.EmbedTexts(labels, tokenizer);
        var logits = new double[labels.Count];
        for (int j = 0; j < labels.Count; j++)
        {
            double dot = 0;
            for (int k = 0; k < image.Length; k++) dot += image[k] * texts[j][k];
            logits[j] = encoder.LogitScale * dot;
        }
        double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
        return Enumerable.Range(0, labels.Count)
            .Select(j => new LabelProbability(labels[j], (float)(Math.Exp(logits[j] - max) / sum)))
            .OrderByDescending(p => p.Probability)
            .ToList();
    }

    static IEnumerable<float[]> UnitRows(float[] features, int count, int dim)
    {
        if (features.Length != (long)count * dim)
            throw new ClipSharpException($"the backend returned {features.Length} floats for {count} rows of {dim}");
        for (int i = 0; i < count; i++)
        {
            var row = features.AsSpan(i * dim, dim).ToArray();
            double norm = 0;
            foreach (var v in row) norm += (double)v * v;
            float inv = (float)(1 / Math.Sqrt(norm));
            for (int k = 0; k < dim; k++) row[k] *= inv;
            yield return row;
        }
    }
}

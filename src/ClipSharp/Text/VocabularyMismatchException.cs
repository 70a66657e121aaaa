using System.Globalization;

namespace ClipSharp.Text;

/// <summary>
/// A model's token embedding table and the tokenizer's vocabulary differ in size: ids past the table would abort in
/// libtorch, and a smaller vocabulary would give ids that mean other tokens. Thrown before any text is encoded.
/// </summary>
public sealed class VocabularyMismatchException : ArgumentException
{
    /// <summary>Creates the exception; the message names both sizes and the vocabulary.</summary>
    /// <param name="model">Names the model in the message (its checkpoint path), or null.</param>
    /// <param name="modelVocabSize">The model's <c>vocab_size</c>.</param>
    /// <param name="tokenizer">The tokenizer in use.</param>
    public VocabularyMismatchException(string? model, int modelVocabSize, ClipTokenizer tokenizer)
        : base(Describe(model, modelVocabSize, tokenizer) + "; use the vocabulary the model was trained with")
    {
        Model = model;
        ModelVocabSize = modelVocabSize;
        TokenizerVocabSize = tokenizer.VocabSize;
        VocabularySource = tokenizer.Source;
    }

    /// <summary>The model's checkpoint path, if known.</summary>
    public string? Model { get; }

    /// <summary>The model's <c>vocab_size</c>.</summary>
    public int ModelVocabSize { get; }

    /// <summary>The tokenizer's number of ids.</summary>
    public int TokenizerVocabSize { get; }

    /// <summary>Where the tokenizer's vocabulary came from (<see cref="ClipTokenizer.Source"/>).</summary>
    public string VocabularySource { get; }

    /// <summary>The message without the closing advice, for callers that add their own (the CLI names --vocab).</summary>
    public string Description => Describe(Model, ModelVocabSize, TokenizerVocabSize, VocabularySource);

    static string Describe(string? model, int modelVocabSize, ClipTokenizer tokenizer) =>
        Describe(model, modelVocabSize, tokenizer.VocabSize, tokenizer.Source);

    static string Describe(string? model, int modelVocabSize, int tokens, string source) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{model ?? "the model"}: the model's vocab_size is {modelVocabSize}, but the vocabulary in use ({source}) has {tokens} tokens");
}

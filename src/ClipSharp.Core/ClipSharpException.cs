namespace ClipSharp;

/// <summary>
/// The base of every error ClipSharp itself reports: a file or setting it cannot use (a malformed checkpoint, config,
/// dataset or index, an image it cannot decode), or a distributed collective that failed. The message names the file
/// or option and what is wrong, so an application can catch this one type and show the message as it is.
/// Misuse of the API (a null argument, an out-of-range number) still throws the usual <see cref="ArgumentException"/>,
/// and the operating system's errors (a missing or unreadable file) their <see cref="IOException"/>.
/// </summary>
public class ClipSharpException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What is wrong, naming the file or option.</param>
    public ClipSharpException(string message) : base(message) { }

    /// <summary>Creates the exception with the error that caused it.</summary>
    /// <param name="message">What is wrong, naming the file or option.</param>
    /// <param name="inner">The underlying exception.</param>
    public ClipSharpException(string message, Exception? inner) : base(message, inner) { }
}

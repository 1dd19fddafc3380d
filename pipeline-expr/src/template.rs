//! Templates: strings with `{{...}}` references, parsed once at load time.
//!
//! A template is a list of literal pieces and references. The spec loader parses every string that
//! may carry references (argv items, env values, `when` operands, free-form `spec` leaves) into a
//! [`Template`], so unknown reference forms are rejected before anything runs, and the executor and
//! the Argo compiler only walk typed values.

use std::fmt;

/// A string with references, split into its pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The pieces in order; adjacent literals are merged.
    pub segments: Vec<Segment>,
}

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text copied as is.
    Literal(String),
    /// A `{{...}}` reference replaced at run time.
    Reference(Reference),
}

/// What a `{{...}}` names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reference {
    /// `{{params.NAME}}`: a pipeline parameter.
    Param(String),
    /// `{{steps.STEP.outputs.params.NAME}}`: an output parameter of an earlier step.
    StepParam {
        /// The producing step.
        step: String,
        /// The output parameter's name.
        output: String,
    },
    /// `{{steps.STEP.outputs.artifacts.NAME}}`: the absolute path of an earlier step's artifact.
    StepArtifact {
        /// The producing step.
        step: String,
        /// The output artifact's name.
        output: String,
    },
    /// `{{item}}`: the current `withItems` item (a string item, or a map item as JSON).
    Item,
    /// `{{item.FIELD}}`: a field of the current map item.
    ItemField(String),
}

/// Why a template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{` without its `}}`.
    #[error("unclosed `{{{{` at byte {0}")]
    Unclosed(usize),
    /// A reference that is none of the known forms.
    #[error(
        "unknown reference `{{{{{0}}}}}` (expected params.NAME, steps.STEP.outputs.params.NAME, steps.STEP.outputs.artifacts.NAME, item or item.FIELD)"
    )]
    UnknownForm(String),
}

// === impl Template ===

impl Template {
    /// Parses `text`, splitting out every `{{...}}` reference.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            literal.push_str(&rest[..open]);
            let after_open = &rest[open + 2..];
            let Some(close) = after_open.find("}}") else {
                return Err(TemplateError::Unclosed(offset + open));
            };
            let reference = Reference::parse(after_open[..close].trim())?;
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(Segment::Reference(reference));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Self { segments })
    }

    /// Every reference in order of appearance.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Reference(reference) => Some(reference),
            Segment::Literal(_) => None,
        })
    }

    /// Builds the final string, asking `resolve` for the value of each reference.
    pub fn render<E>(
        &self,
        mut resolve: impl FnMut(&Reference) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut output = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => output.push_str(text),
                Segment::Reference(reference) => output.push_str(&resolve(reference)?),
            }
        }
        Ok(output)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => formatter.write_str(text)?,
                Segment::Reference(reference) => write!(formatter, "{{{{{reference}}}}}")?,
            }
        }
        Ok(())
    }
}

// === impl Reference ===

impl Reference {
    /// Parses the inside of `{{...}}`, already trimmed.
    pub fn parse(inner: &str) -> Result<Self, TemplateError> {
        let unknown = || TemplateError::UnknownForm(inner.to_owned());
        let parts: Vec<&str> = inner.split('.').collect();
        if parts.iter().any(|part| part.is_empty()) {
            return Err(unknown());
        }
        match parts.as_slice() {
            ["params", name] => Ok(Self::Param((*name).to_owned())),
            ["steps", step, "outputs", "params", output] => Ok(Self::StepParam {
                step: (*step).to_owned(),
                output: (*output).to_owned(),
            }),
            ["steps", step, "outputs", "artifacts", output] => Ok(Self::StepArtifact {
                step: (*step).to_owned(),
                output: (*output).to_owned(),
            }),
            ["item"] => Ok(Self::Item),
            ["item", field] => Ok(Self::ItemField((*field).to_owned())),
            _ => Err(unknown()),
        }
    }

    /// The step this reference reads from, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            Self::StepParam { step, .. } | Self::StepArtifact { step, .. } => Some(step),
            Self::Param(_) | Self::Item | Self::ItemField(_) => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Param(name) => write!(formatter, "params.{name}"),
            Self::StepParam { step, output } => {
                write!(formatter, "steps.{step}.outputs.params.{output}")
            }
            Self::StepArtifact { step, output } => {
                write!(formatter, "steps.{step}.outputs.artifacts.{output}")
            }
            Self::Item => formatter.write_str("item"),
            Self::ItemField(field) => write!(formatter, "item.{field}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_reference_form_and_keeps_literals() {
        let template = Template::parse(
            "a {{params.rows}}-{{ steps.prep.outputs.params.count }}/{{steps.prep.outputs.artifacts.data}} {{item}} {{item.lr}}",
        )
        .unwrap();
        let references: Vec<_> = template.references().cloned().collect();
        assert_eq!(
            references,
            vec![
                Reference::Param("rows".into()),
                Reference::StepParam {
                    step: "prep".into(),
                    output: "count".into()
                },
                Reference::StepArtifact {
                    step: "prep".into(),
                    output: "data".into()
                },
                Reference::Item,
                Reference::ItemField("lr".into()),
            ]
        );
        assert_eq!(
            template.segments.first(),
            Some(&Segment::Literal("a ".into()))
        );
    }

    #[test]
    fn rejects_unclosed_and_unknown_references() {
        assert_eq!(
            Template::parse("x {{params.a"),
            Err(TemplateError::Unclosed(2))
        );
        assert!(matches!(
            Template::parse("{{steps.a.outputs.result}}"),
            Err(TemplateError::UnknownForm(_))
        ));
        assert!(matches!(
            Template::parse("{{params.}}"),
            Err(TemplateError::UnknownForm(_))
        ));
    }

    #[test]
    fn renders_with_resolved_values_and_displays_round_trip() {
        let template = Template::parse("--rows={{params.rows}};").unwrap();
        let rendered: Result<String, ()> = template.render(|_| Ok("1 2".to_owned()));
        assert_eq!(rendered.unwrap(), "--rows=1 2;");
        assert_eq!(template.to_string(), "--rows={{params.rows}};");
        assert_eq!(Template::parse("").unwrap().segments, vec![]);
    }
}
